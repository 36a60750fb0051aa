// Preloaded with `node --require` to play a machine where the optional package node-datachannel
// is not installed (or its native library cannot load): resolving it fails as a missing module does.
const Module = require('node:module');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === 'node-datachannel' || request.startsWith('node-datachannel/')) {
    const error = new Error(`Cannot find module '${request}'`);
    error.code = 'MODULE_NOT_FOUND';
    throw error;
  }
  return resolve.call(this, request, ...rest);
};
