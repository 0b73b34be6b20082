"""`attune` for users: log in, run actions and follow them, manage packs, rules, the datastore,
secrets, inquiries and API keys, over the REST API (docs/cli.md).

Exit codes: 0 succeeded; 1 the execution (or a pack's environment build) failed; 2 a usage or
API error (the API's message on stderr); 3 timed out or canceled. `--json` on every command
prints the API's `data` as JSON instead of tables.
"""

from __future__ import annotations

import getpass
import io
import json
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import click
from click.shell_completion import get_completion_class
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from .api import Api, ApiError, NotLoggedIn, Unreachable, login_entry, resolve_url
from .credentials import CredentialStore
from .follow import WaitTimeout, follow
from .params import InputError, load_param_file, parse_duration, parse_pairs, parse_value

OK, FAILED, ERROR, TIMED_OUT = 0, 1, 2, 3
COMPLETE_VAR = "_ATTUNE_COMPLETE"
PACK_POLL_SECONDS = 0.5
TREE_DEPTH = 4  # nested workflows shown this deep by `executions get`

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


# Plumbing: errors, --json, output -----------------------------------------------------------

class AttuneCommand(click.Command):
    """Every command takes `--json`; its value lands in ctx.meta, not in the callback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(["--json", "as_json"], is_flag=True,
                                        help="Print the API's data as JSON (for scripts)."))

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta["json"] = ctx.params.pop("as_json", False)
        return super().invoke(ctx)


class AttuneGroup(click.Group):
    """Groups whose commands take `--json`; the top one turns known failures into exit 2."""

    command_class = AttuneCommand
    group_class = type  # subgroups are AttuneGroups too

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.parent is not None:
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            stderr.print(f"attune: error: {describe(exc)}", markup=False)
        except (Unreachable, NotLoggedIn, InputError, OSError) as exc:
            stderr.print(f"attune: error: {exc}", markup=False)
        ctx.exit(ERROR)


def describe(exc: ApiError) -> str:
    """The API's error as one readable paragraph: status, code, message, then the details."""
    text = f"{exc.message} ({exc.status} {exc.code})" if exc.status else exc.message
    details = dict(exc.details)
    fields = details.pop("fields", None)
    if isinstance(fields, dict):
        text += "".join(f"\n  {name}: {why}" for name, why in fields.items())
    text += "".join(f"\n  {name}: {json.dumps(value)}" for name, value in details.items())
    return text


def as_json() -> bool:
    return bool(click.get_current_context().meta.get("json"))


def emit(data: Any, human: Callable[[], None]) -> None:
    """`data` as JSON with --json, else what `human` prints."""
    if as_json():
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        human()


def api_of(ctx: click.Context) -> Api:
    return Api.from_environment(ctx.find_root().params.get("url"))


def table(rows: Iterable[dict[str, Any]], columns: Sequence[tuple[str, str | Callable]]) -> None:
    """Rows as a rich table; a column is (header, key) or (header, row -> value)."""
    shown = Table(show_edge=False, header_style="bold", pad_edge=False)
    for header, _ in columns:
        shown.add_column(header, overflow="fold")
    count = 0
    for row in rows:
        shown.add_row(*(cell(get(row) if callable(get) else row.get(get)) for _, get in columns))
        count += 1
    if count:
        stdout.print(shown)
    else:
        stderr.print("(none)")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def when(value: str | None) -> str:
    """An RFC 3339 timestamp, shorter: `2026-01-27 10:30:00`."""
    return value.replace("T", " ")[:19] if value else "-"


def read_secret(prompt: str) -> str:
    """A password or a secret's value: typed at a hidden prompt on a terminal, otherwise all of
    standard input less its final newline. Never an argument: argv is readable by every local
    user and lands in shell history."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.read().removesuffix("\n").removesuffix("\r")


# The group ---------------------------------------------------------------------------------

@click.group(cls=AttuneGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="ATTUNE_URL", show_envvar=True,
              help="The API's base URL (default: $ATTUNE_URL, else the last login's).")
def cli(url: str | None) -> None:
    """Attune from your shell: `attune login`, then `attune run core.echo message=hi`.

    The operator's commands (up, down, status, supervise, health, migrate, register-pack,
    create-user, keys, rotate-keys, shell) run on the platform's host and read its config
    (--config, default $ATTUNE_CONFIG or nameko.yaml); the others talk to the API (--url)."""


# Login --------------------------------------------------------------------------------------

@cli.command()
@click.option("--url", "login_url", envvar="ATTUNE_URL",
              help="The API's base URL, e.g. http://127.0.0.1:8080 (default: $ATTUNE_URL).")
@click.option("--username", required=True, help="Your user name.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from standard input (for scripts), never from argv.")
@click.pass_context
def login(ctx: click.Context, login_url: str | None, username: str,
          password_stdin: bool) -> None:
    """Log in; the tokens are cached per URL (mode 600) and refreshed when they expire."""
    url = login_url or ctx.find_root().params.get("url")
    if not url:
        raise click.UsageError("say where: --url URL (or ATTUNE_URL)")
    if not password_stdin and not sys.stdin.isatty():
        raise click.UsageError("no terminal to prompt for the password on: give it on "
                               "standard input with --password-stdin")
    password = read_secret("Password: ")
    store = CredentialStore()
    api = Api(url, store)
    tokens = api.call("POST", "/auth/login", json={"username": username, "password": password},
                      auth=False)
    store.put(api.url, login_entry(username, tokens))
    user = tokens["user"]
    emit({"url": api.url, "user": user}, lambda: stdout.print(
        f"Logged in to {api.url} as {user['username']} (role {user['role']}, tenant "
        f"{user['tenant_id']}); tokens in {store.path}", markup=False))


@cli.command()
@click.pass_context
def logout(ctx: click.Context) -> None:
    """Revoke your tokens on the server (POST /auth/logout) and forget them here."""
    store = CredentialStore()
    url = resolve_url(ctx.find_root().params.get("url"), store)
    if store.get(url) is None:
        raise NotLoggedIn(f"not logged in to {url}")
    api = Api(url, store)
    try:
        done = api.post("/auth/logout")
    except NotLoggedIn:  # the refresh token expired too: nothing left to revoke
        done = {"logged_out": True}
    store.forget(url)
    emit(done, lambda: stdout.print(f"Logged out of {url}", markup=False))


@cli.command()
@click.pass_context
def whoami(ctx: click.Context) -> None:
    """Who the API says you are (GET /api/v1/me)."""
    api = api_of(ctx)
    me = api.get("/api/v1/me")
    emit(me, lambda: stdout.print(
        f"{me['username']} (user {me['id']}, role {me['role']}, tenant {me['tenant_id']}) at "
        f"{api.url}", markup=False))


# Running and following executions --------------------------------------------------------

def exit_code(execution: dict[str, Any]) -> int:
    """0 succeeded; 3 canceled or timed out (the action's timeout); 1 any other end."""
    status = execution["status"]
    error = (execution.get("result") or {}).get("error") or {}
    if status == "succeeded":
        return OK
    if status == "canceled" or error.get("type") == "timeout":
        return TIMED_OUT
    return FAILED


def print_status(execution: dict[str, Any]) -> None:
    where = stderr if as_json() else stdout
    task = f" task {execution['task_name']}" if execution.get("task_name") else ""
    where.print(f"{time.strftime('%H:%M:%S')} execution {execution['id']} "
                f"{execution.get('action_ref', '')}{task}: {execution['status']}", markup=False)


def print_output(data: dict[str, Any]) -> None:
    where = stderr if as_json() or data.get("stream") == "stderr" else stdout
    for line in data.get("lines") or []:
        where.print(line, markup=False, highlight=False)
    if data.get("dropped"):
        stderr.print(f"({data['dropped']} lines of live output left out)")


def print_result(execution: dict[str, Any]) -> None:
    """An ended execution: its status and duration, its output, and why it failed."""
    result = execution.get("result") or {}
    took = result.get("duration_ms")
    took_text = f" in {took / 1000:.2f} s" if isinstance(took, int | float) else ""
    stdout.print(f"execution {execution['id']} {execution['action_ref']} "
                 f"{execution['status']}{took_text}", markup=False)
    if result.get("output") is not None:
        output = result["output"]
        stdout.print(output if isinstance(output, str) else json.dumps(output, indent=2),
                     markup=False)
    error = result.get("error")
    if error:
        stderr.print(f"error: {error.get('type')}: {error.get('message')}", markup=False)
        if result.get("stderr"):
            stderr.print(str(result["stderr"]).rstrip(), markup=False)


def wait_for(api: Api, execution: dict[str, Any], *, watch: bool,
             timeout: float | None) -> int:
    """Follow an execution to its end (a spinner, or its status changes and live output with
    `watch`), print the result and return the exit code."""
    try:
        if watch:
            print_status(execution)
            final = follow(api, execution["id"], on_status=print_status,
                           on_output=print_output, timeout=timeout, known=execution,
                           on_descendant=print_status)
        elif as_json():
            final = follow(api, execution["id"], timeout=timeout)
        else:
            with stderr.status(f"execution {execution['id']} {execution['action_ref']}: "
                               f"waiting for the result"):
                final = follow(api, execution["id"], timeout=timeout)
    except WaitTimeout as late:
        stderr.print(f"attune: {late}; still waiting after {timeout:g} s: follow it with "
                     f"`attune executions tail {execution['id']}`", markup=False)
        emit(late.execution, lambda: None)
        return TIMED_OUT
    emit(final, lambda: print_result(final))
    return exit_code(final)


def wait_options(command: Callable) -> Callable:
    command = click.option("--timeout", type=float, default=None, metavar="SECONDS",
                           help="Stop waiting after this long (exit 3); the execution goes "
                                "on.")(command)
    return click.option("--watch", is_flag=True,
                        help="Print each status change and the live output as they "
                             "happen.")(command)


@cli.command()
@click.argument("action")
@click.argument("params", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--param-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Parameters from a JSON or YAML mapping (KEY=VALUE words override it).")
@wait_options
@click.pass_context
def run(ctx: click.Context, action: str, params: tuple[str, ...], param_file: Path | None,
        watch: bool, timeout: float | None) -> None:
    """Run ACTION and wait for its result. Values are JSON when they parse as JSON (n=3,
    flag=true, list='[1,2]'), otherwise text (name=Ada)."""
    parameters = load_param_file(param_file) if param_file else {}
    parameters.update(parse_pairs(params))
    api = api_of(ctx)
    execution = api.post("/api/v1/executions", {"action": action, "parameters": parameters})
    ctx.exit(wait_for(api, execution, watch=watch, timeout=timeout))


@cli.group()
def executions() -> None:
    """List, inspect, follow, cancel and re-run executions."""


@executions.command("list")
@click.option("--action", help="Only this action's (its ref).")
@click.option("--status", help="Only these statuses (comma-separated: running,failed).")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@click.pass_context
def executions_list(ctx: click.Context, action: str | None, status: str | None,
                    limit: int) -> None:
    """The newest executions first."""
    items = list(api_of(ctx).items("/api/v1/executions", limit, action=action, status=status))
    emit(items, lambda: table(items, [
        ("ID", "id"), ("ACTION", "action_ref"), ("STATUS", "status"),
        ("CREATED", lambda e: when(e["created_at"])), ("PARENT", "parent_execution_id")]))


def children_of(api: Api, execution: dict[str, Any], depth: int) -> list[dict[str, Any]]:
    """The execution's children (tasks, items, attempts), oldest first; workflow tasks and
    attempts with their own children down to `depth` levels (items are leaves)."""
    kids = list(api.items("/api/v1/executions", parent_execution_id=execution["id"]))[::-1]
    for kid in kids:
        if depth > 1 and kid.get("item_index") is None:
            kid["children"] = children_of(api, kid, depth - 1)
    return kids


def label(execution: dict[str, Any]) -> str:
    name = (f"task {execution['task_name']}" if execution.get("task_name") else
            f"item {execution['item_index']}" if execution.get("item_index") is not None else
            f"attempt {execution['attempt']}" if (execution.get("max_attempts") or 1) > 1
            else "")
    return " ".join(filter(None, [f"{execution['id']}", name, execution["action_ref"],
                                  execution["status"]]))


@executions.command("get")
@click.argument("execution_id", type=int)
@click.pass_context
def executions_get(ctx: click.Context, execution_id: int) -> None:
    """One execution: its parameters, result, and its tree of children (workflow tasks,
    with-items items, retry attempts). With --json: the execution plus `children`."""
    api = api_of(ctx)
    execution = api.get(f"/api/v1/executions/{execution_id}")
    execution["children"] = children_of(api, execution, TREE_DEPTH)

    def human() -> None:
        rows = [("action", execution["action_ref"]), ("status", execution["status"]),
                ("parameters", json.dumps(execution["parameters"])),
                ("created", when(execution["created_at"])),
                ("started", when(execution.get("started_at"))),
                ("finished", when(execution.get("finished_at")))]
        for name, value in rows:
            stdout.print(f"{name:11} {value}", markup=False)
        result = execution.get("result") or {}
        for name in ("output", "error", "stdout", "stderr"):
            if result.get(name):
                stdout.print(f"{name:11} {cell(result[name]).rstrip()}", markup=False)
        if execution["children"]:
            tree = Tree(label(execution))
            grow(tree, execution["children"])
            stdout.print(tree)

    emit(execution, human)


def grow(tree: Tree, children: list[dict[str, Any]]) -> None:
    for child in children:
        grow(tree.add(label(child)), child.get("children") or [])


@executions.command("tail")
@click.argument("execution_id", type=int)
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              help="Stop following after this long (exit 3).")
@click.pass_context
def executions_tail(ctx: click.Context, execution_id: int, timeout: float | None) -> None:
    """Follow an execution until it ends: its status changes and live output, then its result."""
    api = api_of(ctx)
    execution = api.get(f"/api/v1/executions/{execution_id}")
    ctx.exit(wait_for(api, execution, watch=True, timeout=timeout))


@executions.command("cancel")
@click.argument("execution_id", type=int)
@click.pass_context
def executions_cancel(ctx: click.Context, execution_id: int) -> None:
    """Cancel an execution (at once if not yet running, else the worker stops it)."""
    execution = api_of(ctx).post(f"/api/v1/executions/{execution_id}/cancel")
    emit(execution, lambda: stdout.print(f"execution {execution_id}: {execution['status']}"))


@executions.command("rerun")
@click.argument("execution_id", type=int)
@wait_options
@click.pass_context
def executions_rerun(ctx: click.Context, execution_id: int, watch: bool,
                     timeout: float | None) -> None:
    """Run an execution's action again with the same parameters, and wait as `run` does."""
    api = api_of(ctx)
    execution = api.post(f"/api/v1/executions/{execution_id}/rerun")
    ctx.exit(wait_for(api, execution, watch=watch, timeout=timeout))


# Packs, actions, triggers, rules, events ----------------------------------------------------

def archive(folder: Path) -> bytes:
    """A pack folder as the .tar.gz the API takes (the folder itself at the top, as
    `tar czf pack.tar.gz my_pack` makes it)."""
    if not (folder / "pack.yaml").is_file():
        raise InputError(f"{folder} has no pack.yaml: not a pack folder")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.resolve().name,
                filter=lambda m: None if m.name.split("/")[-1] in ("__pycache__", ".git") else m)
    return buffer.getvalue()


def upload_of(path: Path) -> bytes:
    if path.is_dir():
        return archive(path)
    if path.name.endswith((".tar.gz", ".tgz")):
        return path.read_bytes()
    raise InputError(f"{path} is neither a pack folder nor a .tar.gz")


def settle(api: Api, pack: dict[str, Any], timeout: float) -> int:
    """Wait while the pack's environment builds (a spinner); print the pack; its exit code."""
    if pack.get("env_status") == "building":
        deadline = time.monotonic() + timeout
        with stderr.status(f"pack {pack['ref']}: building its environment"):
            while pack.get("env_status") == "building" and time.monotonic() < deadline:
                time.sleep(PACK_POLL_SECONDS)
                pack = api.get(f"/api/v1/packs/{pack['id']}")
    emit(pack, lambda: show_pack(pack))
    status = pack.get("env_status")
    return OK if status in (None, "ready") else FAILED if status == "failed" else TIMED_OUT


def show_pack(pack: dict[str, Any]) -> None:
    stdout.print(f"pack {pack['ref']} {pack.get('version') or ''} (id {pack['id']}): "
                 f"environment {pack.get('env_status')}", markup=False)
    for kind in ("actions", "triggers", "sensors", "rules"):
        if pack.get(kind):
            stdout.print(f"  {kind:9} {', '.join(pack[kind])}", markup=False)


@cli.group()
def packs() -> None:
    """Register, list, reload and delete packs."""


@packs.command("list")
@click.pass_context
def packs_list(ctx: click.Context) -> None:
    """Your packs and the system packs."""
    items = list(api_of(ctx).items("/api/v1/packs"))
    emit(items, lambda: table(items, [
        ("ID", "id"), ("REF", "ref"), ("VERSION", "version"), ("SYSTEM", "system"),
        ("ENV", "env_status"), ("ACTIONS", lambda p: len(p.get("actions") or []))]))


@packs.command("register")
@click.argument("source", type=click.Path(exists=True, path_type=Path),
                metavar="PATH_OR_ARCHIVE")
@click.option("--force", is_flag=True, help="Replace a pack of the same ref.")
@click.option("--timeout", type=float, default=900, show_default=True, metavar="SECONDS",
              help="How long to wait for the environment build (exit 3 after).")
@click.pass_context
def packs_register(ctx: click.Context, source: Path, force: bool, timeout: float) -> None:
    """Upload a pack folder (archived for you) or a .tar.gz, and wait for its environment."""
    api = api_of(ctx)
    pack = api.post("/api/v1/packs", files={"file": ("pack.tar.gz", upload_of(source))},
                    data={"force": "true" if force else "false"})
    ctx.exit(settle(api, pack, timeout))


@packs.command("reload")
@click.argument("ref")
@click.argument("source", required=False, type=click.Path(exists=True, path_type=Path),
                metavar="[PATH_OR_ARCHIVE]")
@click.option("--timeout", type=float, default=900, show_default=True, metavar="SECONDS",
              help="How long to wait for the environment build (exit 3 after).")
@click.pass_context
def packs_reload(ctx: click.Context, ref: str, source: Path | None, timeout: float) -> None:
    """Re-read a pack from where it was registered, or from a new folder or .tar.gz."""
    api = api_of(ctx)
    pack = api.find("pack", "/api/v1/packs", ref)
    path = f"/api/v1/packs/{pack['id']}/reload"
    if source is None:
        pack = api.post(path, {})
    else:
        pack = api.post(path, files={"file": ("pack.tar.gz", upload_of(source))})
    ctx.exit(settle(api, pack, timeout))


@packs.command("delete")
@click.argument("ref")
@click.pass_context
def packs_delete(ctx: click.Context, ref: str) -> None:
    """Delete a pack with its actions, triggers, sensors and the rules using them."""
    api = api_of(ctx)
    pack = api.find("pack", "/api/v1/packs", ref)
    api.delete(f"/api/v1/packs/{pack['id']}")
    emit({"deleted": pack["ref"], "id": pack["id"]},
         lambda: stdout.print(f"deleted pack {pack['ref']}", markup=False))


@cli.group()
def actions() -> None:
    """List and inspect actions."""


@actions.command("list")
@click.option("--pack", help="Only this pack's actions.")
@click.pass_context
def actions_list(ctx: click.Context, pack: str | None) -> None:
    """The actions you can run."""
    items = list(api_of(ctx).items("/api/v1/actions", pack=pack))
    emit(items, lambda: table(items, [
        ("REF", "ref"), ("RUNNER", "runner_type"), ("DESCRIPTION", "description")]))


@actions.command("get")
@click.argument("ref")
@click.pass_context
def actions_get(ctx: click.Context, ref: str) -> None:
    """One action: its runner and parameters."""
    action = api_of(ctx).find("action", "/api/v1/actions", ref, pack=ref.partition(".")[0])

    def human() -> None:
        stdout.print(f"{action['ref']} ({action['runner_type']}): "
                     f"{action.get('description') or ''}", markup=False)
        table(({"name": name, **(spec if isinstance(spec, dict) else {})}
               for name, spec in (action.get("parameters") or {}).items()), [
            ("PARAMETER", "name"), ("TYPE", "type"), ("REQUIRED", "required"),
            ("DEFAULT", "default"), ("DESCRIPTION", "description")])

    emit(action, human)


@cli.group()
def triggers() -> None:
    """List triggers (a webhook's URL and token among them)."""


@triggers.command("list")
@click.pass_context
def triggers_list(ctx: click.Context) -> None:
    """Your triggers and the system packs'."""
    items = list(api_of(ctx).items("/api/v1/triggers"))
    emit(items, lambda: table(items, [
        ("ID", "id"), ("REF", "ref"), ("TYPE", "type"), ("STATUS", "status"),
        ("WEBHOOK URL", "webhook_url"), ("WEBHOOK TOKEN", "webhook_token")]))


@cli.group()
def rules() -> None:
    """List, enable, disable and dry-run rules."""


@rules.command("list")
@click.option("--pack", help="Only this pack's rules.")
@click.pass_context
def rules_list(ctx: click.Context, pack: str | None) -> None:
    """Your rules."""
    items = list(api_of(ctx).items("/api/v1/rules", pack=pack))
    emit(items, lambda: table(items, [
        ("ID", "id"), ("REF", "ref"), ("TRIGGER", "trigger"), ("ACTION", "action"),
        ("ENABLED", "enabled"), ("CRITERIA", "criteria")]))


def find_rule(api: Api, rule: str) -> dict[str, Any]:
    """A rule by id, `pack.name` ref, or the plain ref of a rule made outside any pack."""
    pack, dot, _ = rule.partition(".")
    return api.find("rule", "/api/v1/rules", rule, pack=pack if dot else None)


def set_enabled(ctx: click.Context, rule: str, enabled: bool) -> None:
    api = api_of(ctx)
    found = find_rule(api, rule)
    changed = api.patch(f"/api/v1/rules/{found['id']}", {"enabled": enabled})
    emit(changed, lambda: stdout.print(
        f"rule {changed['ref']} {'enabled' if changed['enabled'] else 'disabled'}",
        markup=False))


@rules.command("enable")
@click.argument("rule")
@click.pass_context
def rules_enable(ctx: click.Context, rule: str) -> None:
    """Enable RULE (its ref or id): its trigger fires it again."""
    set_enabled(ctx, rule, True)


@rules.command("disable")
@click.argument("rule")
@click.pass_context
def rules_disable(ctx: click.Context, rule: str) -> None:
    """Disable RULE (its ref or id): no firing from now; running executions finish."""
    set_enabled(ctx, rule, False)


@rules.command("test")
@click.argument("rule")
@click.option("--payload", "payload", help="A JSON document, as a webhook of the rule's "
              "trigger would receive it.")
@click.option("--event", "event_id", type=click.IntRange(1), help="A stored event's id.")
@click.pass_context
def rules_test(ctx: click.Context, rule: str, payload: str | None,
               event_id: int | None) -> None:
    """Would RULE (its ref or id) fire on this payload or stored event, and with which
    parameters? Nothing is stored or run. Exit 0 if it would fire, 1 if not."""
    if (payload is None) == (event_id is None):
        raise click.UsageError("give exactly one of --payload JSON and --event ID")
    body: dict[str, Any] = {"event_id": event_id}
    if payload is not None:
        try:
            body = {"payload": json.loads(payload)}
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--payload") from exc
    api = api_of(ctx)
    found = find_rule(api, rule)
    verdict = api.post(f"/api/v1/rules/{found['id']}/test", body)

    def human() -> None:
        criteria = verdict.get("criteria") or {}
        stdout.print(f"rule {verdict['rule_ref']}: {verdict['outcome']}"
                     f"{'' if verdict['would_fire'] else ' (would not fire)'}", markup=False)
        if not verdict.get("enabled", True):
            stdout.print("  the rule is disabled", markup=False)
        if not verdict.get("trigger_matches", True):
            stdout.print("  the event is not of the rule's trigger", markup=False)
        if criteria.get("expression"):
            stdout.print(f"  criteria {criteria['expression']} → "
                         f"{json.dumps(criteria.get('value'))}", markup=False)
        if criteria.get("error"):
            stdout.print(f"  criteria error: {criteria['error']}", markup=False)
        if verdict.get("parameters") is not None:
            stdout.print(f"  {verdict['action']} would get "
                         f"{json.dumps(verdict['parameters'])}", markup=False)
        if verdict.get("parameters_error"):
            stdout.print(f"  parameter error: {verdict['parameters_error']}", markup=False)
        for name, why in (verdict.get("validation_errors") or {}).items():
            stdout.print(f"  {name}: {why}", markup=False)

    emit(verdict, human)
    ctx.exit(OK if verdict["would_fire"] else FAILED)


@cli.group()
def events() -> None:
    """List the events triggers produced."""


@events.command("list")
@click.option("--trigger-id", type=int, help="Only this trigger's events.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@click.pass_context
def events_list(ctx: click.Context, trigger_id: int | None, limit: int) -> None:
    """The newest events first."""
    items = list(api_of(ctx).items("/api/v1/events", limit, trigger_id=trigger_id))
    emit(items, lambda: table(items, [
        ("ID", "id"), ("TRIGGER", "trigger_ref"), ("SOURCE", "source"),
        ("CREATED", lambda e: when(e["created_at"])), ("PAYLOAD", "payload")]))


# Datastore and secrets ----------------------------------------------------------------------

@cli.group()
def key() -> None:
    """The datastore: values your rules and actions read and write."""


@key.command("set")
@click.argument("name")
@click.argument("value")
@click.option("--encrypted", is_flag=True, help="Store it encrypted (listed as ***).")
@click.option("--ttl", help="Expire it after a duration (3600, 15m, 12h, 30d).")
@click.pass_context
def key_set(ctx: click.Context, name: str, value: str, encrypted: bool, ttl: str | None) -> None:
    """Set NAME to VALUE (JSON when it parses as JSON, else text). For a secret, use
    `attune secret set`: this value is an argument."""
    body: dict[str, Any] = {"key": name, "value": parse_value(value), "encrypted": encrypted}
    if ttl is not None:
        body["ttl_seconds"] = parse_duration(ttl)
    item = api_of(ctx).post("/api/v1/datastore", body)
    emit(item, lambda: stdout.print(f"{item['key']} set", markup=False))


@key.command("get")
@click.argument("name")
@click.pass_context
def key_get(ctx: click.Context, name: str) -> None:
    """Print NAME's value (decrypted for you)."""
    item = api_of(ctx).get(f"/api/v1/datastore/{name}")
    emit(item, lambda: stdout.print(cell(item["value"]), markup=False))


@key.command("list")
@click.option("--prefix", help="Only the keys starting with this.")
@click.pass_context
def key_list(ctx: click.Context, prefix: str | None) -> None:
    """Your keys (encrypted values as ***)."""
    items = list(api_of(ctx).items("/api/v1/datastore", prefix=prefix))
    emit(items, lambda: table(items, [
        ("KEY", "key"), ("VALUE", "value"), ("ENCRYPTED", "encrypted"),
        ("EXPIRES", lambda i: when(i.get("expires_at"))),
        ("UPDATED", lambda i: when(i.get("updated_at")))]))


@key.command("delete")
@click.argument("name")
@click.pass_context
def key_delete(ctx: click.Context, name: str) -> None:
    """Delete NAME."""
    api_of(ctx).delete(f"/api/v1/datastore/{name}")
    emit({"deleted": name}, lambda: stdout.print(f"{name} deleted", markup=False))


@cli.group()
def secret() -> None:
    """Secrets for actions: write-only, never shown again."""


@secret.command("set")
@click.argument("name")
@click.pass_context
def secret_set(ctx: click.Context, name: str) -> None:
    """Set secret NAME; its value is typed at a hidden prompt or read from standard input
    (`printf %s "$VALUE" | attune secret set NAME`), never an argument."""
    value = read_secret(f"Value of {name}: ")
    if not value:
        raise InputError("the value is empty")
    item = api_of(ctx).post("/api/v1/secrets", {"key": name, "value": value})
    emit(item, lambda: stdout.print(f"secret {item['key']} set", markup=False))


@secret.command("list")
@click.pass_context
def secret_list(ctx: click.Context) -> None:
    """Your secrets' names."""
    items = list(api_of(ctx).items("/api/v1/secrets"))
    emit(items, lambda: table(items, [("NAME", "key"), ("CREATED", lambda s: when(
        s.get("created_at"))), ("UPDATED", lambda s: when(s.get("updated_at")))]))


@secret.command("delete")
@click.argument("name")
@click.pass_context
def secret_delete(ctx: click.Context, name: str) -> None:
    """Delete secret NAME."""
    api_of(ctx).delete(f"/api/v1/secrets/{name}")
    emit({"deleted": name}, lambda: stdout.print(f"secret {name} deleted", markup=False))


# Inquiries, audit, API keys -----------------------------------------------------------------

@cli.group()
def inquiries() -> None:
    """Questions paused executions ask (core.ask): list and answer them."""


@inquiries.command("list")
@click.option("--status", type=click.Choice(["pending", "responded", "expired"]),
              help="Only these (pending: awaiting an answer).")
@click.pass_context
def inquiries_list(ctx: click.Context, status: str | None) -> None:
    """The newest inquiries first."""
    items = list(api_of(ctx).items("/api/v1/inquiries", status=status))
    emit(items, lambda: table(items, [
        ("ID", "id"), ("EXECUTION", "execution_id"), ("STATUS", "status"),
        ("PROMPT", "prompt"), ("EXPIRES", lambda i: when(i.get("expires_at"))),
        ("SCHEMA", "schema")]))


@inquiries.command("respond")
@click.argument("inquiry_id", type=int)
@click.argument("answers", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.pass_context
def inquiries_respond(ctx: click.Context, inquiry_id: int, answers: tuple[str, ...]) -> None:
    """Answer an inquiry (approved=true, replicas=3); the paused execution resumes."""
    inquiry = api_of(ctx).post(f"/api/v1/inquiries/{inquiry_id}/respond",
                               {"response": parse_pairs(answers)})
    emit(inquiry, lambda: stdout.print(
        f"inquiry {inquiry_id} {inquiry['status']}: execution {inquiry['execution_id']} "
        f"resumes", markup=False))


@cli.command()
@click.option("--entity-type", help="Only entries about this kind (execution, rule, pack...).")
@click.option("--entity-id", type=int, help="Only entries about this one.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.pass_context
def audit(ctx: click.Context, entity_type: str | None, entity_id: int | None,
          limit: int) -> None:
    """The audit trail, oldest first: who did what to which entity."""
    items = list(api_of(ctx).items("/api/v1/audit", limit, entity_type=entity_type,
                                   entity_id=entity_id))
    emit(items, lambda: table(items, [
        ("TIME", lambda a: when(a["timestamp"])), ("ACTOR", "actor"), ("ACTION", "action"),
        ("ENTITY", lambda a: f"{a['entity_type']} {a['entity_id']}"),
        ("DETAILS", "details")]))


@cli.group()
def apikey() -> None:
    """API keys for scripts and CI (ATTUNE_TOKEN=atk_...)."""


@apikey.command("create")
@click.option("--name", required=True, help="What the key is for.")
@click.option("--role", type=click.Choice(["admin", "editor", "executor", "viewer"]),
              help="At most yours (default: yours).")
@click.option("--expires", help="Lifetime: 3600, 12h, 30d (default: never).")
@click.pass_context
def apikey_create(ctx: click.Context, name: str, role: str | None,
                  expires: str | None) -> None:
    """Make an API key; it is shown this once."""
    body: dict[str, Any] = {"name": name}
    if role is not None:
        body["role"] = role
    if expires is not None:
        body["expires_in"] = parse_duration(expires)
    made = api_of(ctx).post("/api/v1/apikeys", body)

    def human() -> None:
        stdout.print(made["key"], markup=False)
        stderr.print(f"API key {made['id']} ({made['name']}, role {made['role']}, expires "
                     f"{when(made.get('expires_at'))}): shown this once, keep it now",
                     markup=False)

    emit(made, human)


@apikey.command("list")
@click.pass_context
def apikey_list(ctx: click.Context) -> None:
    """Your API keys (an admin: the tenant's), without the keys themselves."""
    items = list(api_of(ctx).items("/api/v1/apikeys"))
    emit(items, lambda: table(items, [
        ("ID", "id"), ("NAME", "name"), ("PREFIX", "prefix"), ("ROLE", "role"),
        ("EXPIRES", lambda k: when(k.get("expires_at"))),
        ("LAST USED", lambda k: when(k.get("last_used_at"))),
        ("REVOKED", lambda k: when(k.get("revoked_at")))]))


@apikey.command("revoke")
@click.argument("key_id", type=int)
@click.pass_context
def apikey_revoke(ctx: click.Context, key_id: int) -> None:
    """Revoke an API key: refused from the next request on."""
    done = api_of(ctx).delete(f"/api/v1/apikeys/{key_id}")
    emit(done, lambda: stdout.print(f"API key {key_id} revoked", markup=False))


# Shell completion ---------------------------------------------------------------------------

@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh"]))
def completion(shell: str) -> None:
    """Print the completion script: `eval "$(attune completion bash)"` in ~/.bashrc
    (zsh: ~/.zshrc)."""
    maker = get_completion_class(shell)
    assert maker is not None  # both are click's own
    click.echo(maker(cli, {}, "attune", COMPLETE_VAR).source())


def main(argv: Sequence[str]) -> int:
    """Run `attune` on `argv` (the entry point has added the operator's commands to the
    group); the exit code."""
    try:
        cli.main(args=list(argv), prog_name="attune", complete_var=COMPLETE_VAR)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else ERROR)
    return OK
