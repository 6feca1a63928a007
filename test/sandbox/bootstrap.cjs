'use strict';
/**
 * A minimal stand-in for Lambda's Node.js runtime (its /var/runtime): loads
 * the handler that `_HANDLER` names from `LAMBDA_TASK_ROOT` once (the cold
 * start), then runs the invocations its parent sends over IPC one at a time,
 * answering each with the handler's result, or its error shaped as Lambda
 * reports one. It uses nothing but Node's built-ins, and it records every
 * module the function requests, so the test can tell a built-in from
 * anything else and see when each was first loaded.
 */
const { existsSync } = require('node:fs');
const Module = require('node:module');
const path = require('node:path');

const taskRoot = process.env.LAMBDA_TASK_ROOT ?? '';
let requested = [];
const originalLoad = Module._load;
Module._load = function load(request, _parent, _isMain) {
  // biome-ignore lint/complexity/noArguments: forwards Node's internal call as is
  const loaded = originalLoad.apply(this, arguments);
  requested.push(request);
  return loaded;
};
/** Modules requested since the last report: built-ins by name, anything else as a path. */
const takeRequested = () => {
  const all = [...new Set(requested)];
  requested = [];
  return all;
};

const errorOf = (error, type) => ({
  errorType: type ?? error?.name ?? 'Error',
  errorMessage: error && error.message !== undefined ? String(error.message) : String(error),
  stack: error && typeof error.stack === 'string' ? error.stack.split('\n') : [],
});

function loadHandler() {
  // `functions/connect.handler`: module `functions/connect` under the task
  // root, export `handler`; Lambda tries these extensions in this order.
  const spec = process.env._HANDLER ?? '';
  const dot = spec.lastIndexOf('.');
  const modulePath = path.resolve(taskRoot, spec.slice(0, dot));
  const exportName = spec.slice(dot + 1);
  const file = ['.js', '.mjs', '.cjs'].map((ext) => modulePath + ext).find((f) => existsSync(f));
  if (!file)
    throw Object.assign(new Error(`Cannot find module '${spec.slice(0, dot)}'`), {
      name: 'Runtime.ImportModuleError',
    });
  let exported;
  try {
    exported = require(file);
  } catch (error) {
    throw Object.assign(error, { lambdaType: 'Runtime.ImportModuleError' });
  }
  const handler = exported[exportName];
  if (typeof handler !== 'function')
    throw Object.assign(new Error(`${spec} is undefined or not exported`), {
      name: 'Runtime.HandlerNotFound',
    });
  return handler;
}

const started = process.hrtime.bigint();
let handler;
try {
  handler = loadHandler();
} catch (error) {
  process.send({
    type: 'init',
    ok: false,
    error: errorOf(error, error.lambdaType),
    requested: takeRequested(),
  });
  process.exit(1);
}
process.send({
  type: 'init',
  ok: true,
  initMs: Number(process.hrtime.bigint() - started) / 1e6,
  requested: takeRequested(),
});

// Lambda ends an instance whose code leaves an error unhandled.
const crash = (error) => {
  process.send({ type: 'crash', error: errorOf(error) }, () => process.exit(1));
};
process.on('unhandledRejection', crash);
process.on('uncaughtException', crash);

let queue = Promise.resolve();
process.on('message', (message) => {
  if (message.type !== 'invoke') return;
  queue = queue.then(() => invoke(message));
});

async function invoke({ id, event, context: base, deadlineMs }) {
  const context = {
    ...base,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadlineMs - Date.now()),
  };
  try {
    const result = await new Promise((resolve, reject) => {
      const callback = (error, value) => (error ? reject(error) : resolve(value));
      const returned = handler(event, context, callback);
      if (returned && typeof returned.then === 'function') returned.then(resolve, reject);
    });
    process.send({
      type: 'result',
      id,
      ok: true,
      result: result ?? null,
      requested: takeRequested(),
    });
  } catch (error) {
    process.send({
      type: 'result',
      id,
      ok: false,
      error: errorOf(error),
      requested: takeRequested(),
    });
  }
}
