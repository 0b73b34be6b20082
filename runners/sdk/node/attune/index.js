'use strict';
/**
 * The Attune SDK inside node actions (packs.md): `const attune = require('attune')`.
 *
 * attune.params, attune.context (execution_id, action_ref, attempt, item, item_index, api_url,
 * api_socket, token), attune.secrets.get(name), and the tenant datastore through the gateway:
 *   await attune.datastore.get(key, defaultValue = null)   // missing key -> defaultValue
 *   await attune.datastore.set(key, value, {encrypted = false, ttlSeconds = null} = {})
 *   await attune.datastore.delete(key)                     // false when it did not exist
 *   await attune.webhooks.fire(triggerId, payload)         // the receipt (event_id…)
 * Uses node's own http module (over the gateway's unix socket in a sandbox); no dependencies.
 */

const params = {};
const context = {};
const secretValues = {};
const TIMEOUT_MS = 30000;

class AttuneError extends Error {
  constructor(message) {
    super(message);
    this.name = this.constructor.name;
  }
}

class DatastoreError extends AttuneError {
  constructor(message, status = null) {
    super(message);
    this.status = status;
  }
}

function configure(document) {
  const doc = document || {};
  for (const target of [params, context, secretValues]) {
    for (const key of Object.keys(target)) delete target[key];
  }
  Object.assign(params, doc.parameters || {});
  Object.assign(context, doc.context || {});
  Object.assign(secretValues, doc.secrets || {});
}

const secrets = {
  get(name, defaultValue = null) {
    return Object.prototype.hasOwnProperty.call(secretValues, name)
      ? secretValues[name]
      : defaultValue;
  },
  has(name) {
    return Object.prototype.hasOwnProperty.call(secretValues, name);
  },
};

// The gateway: its unix socket inside a sandbox (context.api_socket), else context.api_url.
function request(method, path, payload) {
  const socketPath = context.api_socket ? String(context.api_socket) : '';
  const apiUrl = String(context.api_url || '').replace(/\/+$/, '');
  if (!socketPath && !apiUrl) {
    return Promise.reject(new DatastoreError(
      'attune.context has no api_socket or api_url: not running inside Attune?'));
  }
  const http = require('http');
  const headers = { Accept: 'application/json', Authorization: `Bearer ${context.token}` };
  const body = payload === undefined ? null : JSON.stringify(payload);
  if (body !== null) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = Buffer.byteLength(body);
  }
  const options = socketPath
    ? { socketPath, path, method, headers, timeout: TIMEOUT_MS }
    : Object.assign(new URL(apiUrl + path), { method, headers, timeout: TIMEOUT_MS });
  return new Promise((resolve, reject) => {
    const req = http.request(options, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let parsed = null;
        try {
          parsed = text ? JSON.parse(text) : null;
        } catch (_err) {
          parsed = null;
        }
        resolve({ status: response.statusCode, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    req.on('error', (err) => reject(
      new DatastoreError(`Datastore ${method} ${path} failed: ${err.message}`)));
    if (body !== null) req.write(body);
    req.end();
  });
}

function check({ status, body }, operation, key) {
  if (status >= 200 && status < 300) return;
  const message = body && body.error && body.error.message ? ` ${body.error.message}` : '';
  throw new DatastoreError(
    `Datastore ${operation} of ${JSON.stringify(key)} failed: HTTP ${status}${message}`,
    status,
  );
}

const keyPath = (key) => `/api/v1/datastore/${encodeURIComponent(String(key))}`;

const datastore = {
  async get(key, defaultValue = null) {
    const reply = await request('GET', keyPath(key));
    if (reply.status === 404) return defaultValue;
    check(reply, 'get', key);
    const data = (reply.body && reply.body.data) || {};
    return data.value === undefined ? defaultValue : data.value;
  },
  async set(key, value, { encrypted = false, ttlSeconds = null } = {}) {
    const payload = { key, value, encrypted: Boolean(encrypted) };
    if (ttlSeconds !== null && ttlSeconds !== undefined) payload.ttl_seconds = ttlSeconds;
    check(await request('POST', '/api/v1/datastore', payload), 'set', key);
  },
  async delete(key) {
    const reply = await request('DELETE', keyPath(key));
    if (reply.status === 404) return false;
    check(reply, 'delete', key);
    return true;
  },
};

class WebhookError extends AttuneError {
  constructor(message, status = null) {
    super(message);
    this.name = 'WebhookError';
    this.status = status;
  }
}

// Webhooks of this tenant, fired with the execution's token: fire(triggerId, payload) → receipt.
const webhooks = {
  async fire(triggerId, payload = {}) {
    let reply;
    try {
      reply = await request('POST', `/api/v1/webhooks/${Number(triggerId)}`, payload);
    } catch (err) {
      throw new WebhookError(err.message.replace('Datastore', 'Webhook'));
    }
    if (reply.status < 200 || reply.status >= 300) {
      const message = reply.body && reply.body.error ? ` ${reply.body.error.message}` : '';
      throw new WebhookError(`Webhook ${triggerId} failed: HTTP ${reply.status}${message}`,
        reply.status);
    }
    return (reply.body && reply.body.data) || {};
  },
};

module.exports = {
  params,
  context,
  secrets,
  datastore,
  webhooks,
  AttuneError,
  DatastoreError,
  WebhookError,
  _configure: configure,
};
