// The Attune console: every page is a shell; this script logs in, reads the REST API with the
// user's token and follows /ws. Data is only ever written as text (textContent), never as HTML.
// The token lives in this tab's sessionStorage (docs/security.md "The console").
"use strict";

const TOKEN_KEY = "attune.token";
const TERMINAL = new Set(["succeeded", "succeeded_with_errors", "failed", "canceled"]);
const $ = (id) => document.getElementById(id);
const page = document.body.dataset.page;
let me = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name === "on") Object.entries(value).forEach(([ev, f]) => node.addEventListener(ev, f));
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, value);
  }
  children.forEach((child) => node.append(child));
  return node;
}

function can(permission) { return Boolean(me && me.permissions.includes(permission)); }
function notice(text) { $("notice").textContent = text || ""; }
function json(value) { return value === null || value === undefined ? "" : JSON.stringify(value, null, 2); }
function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }
function seconds(from, to) {
  if (!from) return "";
  const end = to ? new Date(to) : new Date();
  return `${((end - new Date(from)) / 1000).toFixed(1)} s`;
}
function statusCell(status) { return el("td", {class: `status ${status}`, text: status}); }

class ApiError extends Error {}

async function api(method, path, body) {
  const headers = {Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}`};
  const init = {method, headers};
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const answer = response.status === 204 ? {} : await response.json();
  if (response.status === 401) { showLogin("Your session has ended: log in again."); }
  if (!response.ok) {
    const error = answer.error || {};
    const fields = error.details && error.details.fields ? ` ${JSON.stringify(error.details.fields)}` : "";
    throw new ApiError(`${error.message || response.statusText}${fields}`);
  }
  return answer;
}

// Run an action of the page; an API refusal is shown, not thrown away.
async function attempt(work) {
  notice("");
  try { await work(); } catch (error) { notice(error.message); }
}

// --- /ws: live news ---------------------------------------------------------------------------

function follow(subscriptions, onMessage) {
  const status = $("live");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/ws`);
  socket.onopen = () => {
    socket.send(JSON.stringify({action: "auth", token: sessionStorage.getItem(TOKEN_KEY)}));
    subscriptions.forEach((s) => socket.send(JSON.stringify({action: "subscribe", ...s})));
    if (status) status.textContent = "Live: changes appear as they happen.";
  };
  socket.onmessage = (event) => onMessage(JSON.parse(event.data));
  socket.onclose = (event) => {
    if (status) status.textContent = `Disconnected (${event.code}); reconnecting…`;
    if (event.code !== 4401 && sessionStorage.getItem(TOKEN_KEY)) {
      setTimeout(() => follow(subscriptions, onMessage), 2000);
    }
  };
}

function debounced(work, ms = 150) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(work, ms); };
}

// --- Executions -------------------------------------------------------------------------------

function executionRow(e) {
  return el("tr", {id: `execution-${e.id}`, "data-status": e.status},
    el("td", {}, el("a", {href: `/ui/executions/${e.id}`, text: `#${e.id}`})),
    el("td", {text: e.action_ref}),
    statusCell(e.status),
    el("td", {text: when(e.created_at)}),
    el("td", {text: TERMINAL.has(e.status) ? seconds(e.started_at, e.finished_at) : ""}));
}

function executionQuery() {
  const query = new URLSearchParams({limit: "50"});
  const add = (name, value) => { if (value) query.set(name, value); };
  add("action", $("f-action").value.trim());
  add("status", $("f-status").value);
  add("since", $("f-since").value && new Date($("f-since").value).toISOString());
  add("until", $("f-until").value && new Date($("f-until").value).toISOString());
  if ($("f-top").checked) query.set("top_level", "true");
  return query;
}

async function loadExecutions() {
  const answer = await api("GET", `/api/v1/executions?${executionQuery()}`);
  $("executions").tBodies[0].replaceChildren(...answer.data.map(executionRow));
}

function executionsPage() {
  const reload = debounced(() => attempt(loadExecutions));
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); reload(); });
  follow([{entity_type: "execution"}], (message) => {
    if (message.entity_type !== "execution" || !message.data) return;
    if (message.data.parent_execution_id && $("f-top").checked) return;  // a task: not listed
    const row = $(`execution-${message.data.execution_id}`);
    if (row && message.data.execution && message.data.execution.id) {
      row.replaceWith(executionRow(message.data.execution));
    } else if (row) {
      row.dataset.status = message.data.status;
      row.cells[2].replaceWith(statusCell(message.data.status));
    } else {
      reload();  // a new execution: the list (with its filters) decides whether it shows
    }
  });
  return attempt(loadExecutions);
}

// --- One execution ----------------------------------------------------------------------------

function timeline(children) {
  const starts = children.map((c) => Date.parse(c.started_at || c.created_at));
  const ends = children.map((c) => Date.parse(c.finished_at || new Date().toISOString()));
  const from = Math.min(...starts);
  const span = Math.max(1, Math.max(...ends) - from);
  return (i) => {
    const bar = el("div", {class: `bar ${children[i].status}`,
                           title: `${seconds(children[i].started_at, children[i].finished_at)}`});
    bar.style.marginLeft = `${(100 * (starts[i] - from)) / span}%`;
    bar.style.width = `${Math.max(1, (100 * (ends[i] - starts[i])) / span)}%`;
    return el("td", {class: "timeline"}, bar);
  };
}

async function loadExecution(id) {
  const e = (await api("GET", `/api/v1/executions/${id}`)).data;
  const result = e.result || {};
  const facts = [
    ["Action", e.action_ref], ["Status", e.status], ["Attempt", `${e.attempt} of ${e.max_attempts}`],
    ["Created", when(e.created_at)], ["Started", when(e.started_at)],
    ["Finished", when(e.finished_at)], ["Duration", seconds(e.started_at, e.finished_at)],
    ["Worker", e.worker || ""],
  ];
  $("summary").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {text: k}),
    el("dd", {text: v, id: k === "Status" ? "status" : null, class: k === "Status" ? `status ${v}` : null})]));
  if (e.parent_execution_id) {
    $("summary").append(el("dt", {text: "Parent"}),
      el("dd", {}, el("a", {href: `/ui/executions/${e.parent_execution_id}`, text: `#${e.parent_execution_id}`})));
  }
  $("parameters").textContent = json(e.parameters);
  $("error").textContent = result.error ? json(result.error) : "";
  $("result").textContent = json(e.result);
  if (result.stdout !== undefined) $("stdout").textContent = result.stdout || "";
  if (result.stderr !== undefined) $("stderr").textContent = result.stderr || "";
  $("cancel").hidden = !can("execute") || TERMINAL.has(e.status);
  $("rerun").hidden = !can("execute");
  const children = (await api("GET", `/api/v1/executions?parent_execution_id=${id}&limit=200`)).data;
  children.reverse();  // oldest first: the order the tasks ran in
  $("children-section").hidden = children.length === 0;
  const bar = timeline(children);
  $("children").tBodies[0].replaceChildren(...children.map((c, i) =>
    el("tr", {id: `execution-${c.id}`, "data-status": c.status},
      el("td", {}, el("a", {href: `/ui/executions/${c.id}`, text: `#${c.id}`})),
      el("td", {text: c.task_name || ""}),
      el("td", {text: c.item_index === null ? "" : String(c.item_index)}),
      el("td", {text: c.action_ref}),
      statusCell(c.status),
      bar(i))));
  return new Set(children.map((c) => c.id));
}

function executionPage() {
  const id = Number(document.body.dataset.executionId);
  let children = new Set();
  const reload = debounced(() => attempt(async () => { children = await loadExecution(id); }));
  $("cancel").addEventListener("click", () => attempt(async () => {
    await api("POST", `/api/v1/executions/${id}/cancel`);
    reload();
  }));
  $("rerun").addEventListener("click", () => attempt(async () => {
    const again = (await api("POST", `/api/v1/executions/${id}/rerun`)).data;
    location.assign(`/ui/executions/${again.id}`);
  }));
  follow([{entity_type: "execution"}, {entity_type: "execution", entity_id: id}], (message) => {
    const data = message.data || {};
    if (message.event === "execution.output" && data.execution_id === id) {
      $(data.stream).textContent += data.lines.map((line) => `${line}\n`).join("");
    } else if (message.entity_type === "execution" && (data.execution_id === id
               || data.parent_execution_id === id || children.has(data.execution_id))) {
      reload();
    }
  });
  return attempt(async () => { children = await loadExecution(id); });
}

// --- Inquiries --------------------------------------------------------------------------------

function field(name, schema, required) {
  const id = `field-${name}`;
  const label = el("label", {for: id, text: schema.title || name});
  let input;
  if (Array.isArray(schema.enum)) {
    input = el("select", {id, name}, ...schema.enum.map((v) => el("option", {value: JSON.stringify(v), text: String(v)})));
    input.dataset.kind = "enum";
  } else if (schema.type === "boolean") {
    input = el("input", {id, name, type: "checkbox"});
    input.dataset.kind = "boolean";
  } else if (schema.type === "integer" || schema.type === "number") {
    input = el("input", {id, name, type: "number", step: schema.type === "integer" ? "1" : "any", required});
    input.dataset.kind = "number";
  } else if (schema.type === "string") {
    input = el("input", {id, name, type: "text", required});
    input.dataset.kind = "string";
  } else {
    input = el("textarea", {id, name, rows: "3", required, placeholder: "JSON"});
    input.dataset.kind = "json";
  }
  if (schema.description) label.title = schema.description;
  return el("div", {class: "field"}, label, input);
}

function readField(input) {
  switch (input.dataset.kind) {
    case "enum": return JSON.parse(input.value);
    case "boolean": return input.checked;
    case "number": return input.value === "" ? undefined : Number(input.value);
    case "string": return input.value;
    default: return input.value.trim() === "" ? undefined : JSON.parse(input.value);
  }
}

function inquiryCard(inquiry, reload) {
  const schema = inquiry.schema || {};
  const properties = schema.properties || {};
  const required = new Set(schema.required || []);
  const form = el("form", {class: "card inquiry", id: `inquiry-${inquiry.id}`},
    el("h2", {text: inquiry.prompt || `Inquiry #${inquiry.id}`}),
    el("p", {class: "muted"}, "Execution ",
      el("a", {href: `/ui/executions/${inquiry.execution_id}`, text: `#${inquiry.execution_id}`}),
      inquiry.expires_at ? ` · expires ${when(inquiry.expires_at)}` : ""),
    ...Object.entries(properties).map(([name, s]) => field(name, s, required.has(name))));
  if (can("execute")) form.append(el("button", {type: "submit", text: "Respond"}));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      const response = {};
      form.querySelectorAll("[data-kind]").forEach((input) => {
        const value = readField(input);
        if (value !== undefined) response[input.name] = value;
      });
      await api("POST", `/api/v1/inquiries/${inquiry.id}/respond`, {response});
      reload();
    });
  });
  return form;
}

function inquiriesPage() {
  const load = async () => {
    const answer = await api("GET", "/api/v1/inquiries?status=pending&limit=100");
    const cards = answer.data.map((i) => inquiryCard(i, reload));
    $("inquiries").replaceChildren(...(cards.length ? cards : [el("p", {text: "No pending inquiries."})]));
  };
  const reload = debounced(() => attempt(load));
  follow([{entity_type: "inquiry"}], reload);
  return attempt(load);
}

// --- Rules ------------------------------------------------------------------------------------

function rulesPage() {
  const load = async () => {
    const rules = (await api("GET", "/api/v1/rules?limit=200")).data;
    $("rules").tBodies[0].replaceChildren(...rules.map((rule) => {
      const cell = el("td");
      if (can("write")) {
        cell.append(el("button", {type: "button", text: rule.enabled ? "Disable" : "Enable", on: {click: () =>
          attempt(async () => { await api("PATCH", `/api/v1/rules/${rule.id}`, {enabled: !rule.enabled}); await load(); })}}));
      }
      return el("tr", {id: `rule-${rule.id}`},
        el("td", {text: rule.ref}), el("td", {text: rule.trigger}), el("td", {text: rule.action}),
        el("td", {class: "enabled", text: rule.enabled ? "yes" : "no"}), cell);
    }));
    $("dry-rule").replaceChildren(...rules.map((r) => el("option", {value: String(r.id), text: r.ref})));
  };
  $("dry-run").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      const payload = JSON.parse($("dry-payload").value || "{}");
      const answer = await api("POST", `/api/v1/rules/${$("dry-rule").value}/test`, {payload});
      $("dry-result").textContent = json(answer.data);
    });
  });
  return attempt(load);
}

// --- Packs ------------------------------------------------------------------------------------

function packsPage() {
  const load = async () => {
    const packs = (await api("GET", "/api/v1/packs?limit=200")).data;
    $("packs").tBodies[0].replaceChildren(...packs.map((pack) => {
      const cell = el("td");
      if (can("write") && pack.tenant_id === me.tenant_id) {
        cell.append(el("button", {type: "button", text: "Reload", on: {click: () =>
          attempt(async () => { await api("POST", `/api/v1/packs/${pack.id}/reload`); await load(); })}}));
      }
      return el("tr", {id: `pack-${pack.id}`},
        el("td", {text: pack.system ? `${pack.ref} (system)` : pack.ref}),
        el("td", {text: pack.version || ""}),
        el("td", {class: `status ${pack.env_status || ""}`, text: pack.env_status || ""}),
        el("td", {class: "error", text: pack.env_error || ""}), cell);
    }));
  };
  $("upload").hidden = !can("write");
  $("upload").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      const form = new FormData();
      form.append("file", $("archive").files[0]);
      if ($("force").checked) form.append("force", "true");
      await api("POST", "/api/v1/packs", form);
      $("upload").reset();
      await load();
    });
  });
  return attempt(load);
}

// --- Datastore --------------------------------------------------------------------------------

function datastorePage() {
  return attempt(async () => {
    const items = (await api("GET", "/api/v1/datastore?limit=200")).data;
    $("datastore").tBodies[0].replaceChildren(...items.map((item) => el("tr", {},
      el("td", {text: item.key}),
      el("td", {text: item.encrypted ? "(hidden)" : json(item.value)}),
      el("td", {text: item.encrypted ? "yes" : "no"}),
      el("td", {text: when(item.expires_at)}))));
  });
}

// --- Log in, log out, start -------------------------------------------------------------------

const PAGES = {executions: executionsPage, inquiries: inquiriesPage, rules: rulesPage,
               packs: packsPage, datastore: datastorePage};

function showLogin(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("content").hidden = true;
  $("who").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

async function start() {
  try {
    me = (await api("GET", "/api/v1/me")).data;
  } catch (error) {
    showLogin(sessionStorage.getItem(TOKEN_KEY) ? error.message : "");
    return;
  }
  $("login").hidden = true;
  $("content").hidden = false;
  $("who").textContent = `${me.username} (${me.role})`;
  $("who").hidden = false;
  $("logout").hidden = false;
  const run = page === "executions" && document.body.dataset.executionId ? executionPage : PAGES[page];
  await run();
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("/auth/login", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({username: $("username").value, password: $("password").value}),
  });
  const answer = await response.json();
  if (!response.ok) {
    $("login-error").textContent = (answer.error && answer.error.message) || "Login failed";
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, answer.data.access_token);
  $("password").value = "";
  start();
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/auth/logout").catch(() => {});
  showLogin("Logged out.");
});

if (sessionStorage.getItem(TOKEN_KEY)) start(); else showLogin("");
