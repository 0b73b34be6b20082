'use strict';
/**
 * Runs one node action in its own process: `node node_wrapper.js RESULT_FD ENTRY`.
 *
 * Reads the stdin document, configures the `attune` SDK, then loads the entry point. When it
 * exports `run`, `await run(params)` and write {"output": ...} to the result pipe; otherwise the
 * module has already run as a script on load and the process ends when its work is done. An
 * exception (thrown, rejected or uncaught) writes {"error": {type, message}} to the result pipe,
 * the stack to stderr, and exits 1.
 */

const fs = require('fs');
const path = require('path');
const url = require('url');

const resultFd = Number(process.argv[2]);
const entry = path.resolve(process.argv[3]);
let finished = false;

function writeResult(document) {
  let data;
  try {
    data = JSON.stringify(document === undefined ? null : document);
  } catch (err) {
    data = JSON.stringify({ error: { type: err.name || 'TypeError', message: String(err.message) } });
  }
  const buffer = Buffer.from(data === undefined ? 'null' : data);
  let offset = 0;
  while (offset < buffer.length) offset += fs.writeSync(resultFd, buffer, offset);
}

function fail(err) {
  if (finished) return;
  finished = true;
  const isError = err instanceof Error;
  const type = isError ? err.constructor.name || err.name || 'Error' : 'Error';
  const message = isError ? String(err.message) : String(err);
  process.stderr.write(`${isError && err.stack ? err.stack : message}\n`);
  writeResult({ error: { type, message } });
  process.exit(1);
}

process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

async function main() {
  const raw = fs.readFileSync(0, 'utf8');
  const document = raw.trim() ? JSON.parse(raw) : {};
  const attune = require(path.join(__dirname, '..', 'sdk', 'node', 'attune'));
  attune._configure(document);
  process.argv = [process.argv[0], entry];

  let loaded;
  if (entry.endsWith('.mjs')) {
    loaded = await import(url.pathToFileURL(entry).href);
  } else {
    loaded = require(entry);
  }
  const run =
    loaded && typeof loaded.run === 'function'
      ? loaded.run
      : loaded && loaded.default && typeof loaded.default.run === 'function'
        ? loaded.default.run
        : null;
  if (run === null) return; // script mode: it already ran; exit when its work is done
  const output = await run(document.parameters || {});
  finished = true;
  writeResult({ output: output === undefined ? null : output });
  process.exit(0);
}

main().catch(fail);
