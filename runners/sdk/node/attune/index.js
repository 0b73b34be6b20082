'use strict';
/**
 * The Attune SDK inside node actions (packs.md): `const attune = require('attune')`.
 *
 * attune.params, attune.context (execution_id, action_ref, attempt, item, item_index, api_url,
 * token), attune.secrets.get(name), and the tenant datastore through the gateway:
 *   await attune.datastore.get(key, defaultValue = null)   // missing key -> defaultValue
 *   await attune.datastore.set(key, value, {encrypted = false, ttlSeconds = null} = {})
 *   await attune.datastore.delete(key)                     // false when it did not exist
 * Uses the global fetch of Node >= 18; no dependencies.
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

async function request(method, path, payload) {
  const apiUrl = String(context.api_url || '').replace(/\/+$/, '');
  if (!apiUrl) throw new DatastoreError('attune.context has no api_url: not running inside Attune?');
  const headers = { Accept: 'application/json', Authorization: `Bearer ${context.token}` };
  const init = { method, headers, signal: AbortSignal.timeout(TIMEOUT_MS) };
  if (payload !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(payload);
  }
  let response;
  try {
    response = await fetch(apiUrl + path, init);
  } catch (err) {
    throw new DatastoreError(`Datastore ${method} ${path} failed: ${err.message}`);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_err) {
    body = null;
  }
  return { status: response.status, body };
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

module.exports = {
  params,
  context,
  secrets,
  datastore,
  AttuneError,
  DatastoreError,
  _configure: configure,
};
