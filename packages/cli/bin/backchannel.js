#!/usr/bin/env node
// The `backchannel` command. This file is in the source tree (not in dist/) so that npm links it
// when the workspace is installed, before anything has been built; it loads the compiled CLI.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli.js', import.meta.url);

if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write(`backchannel: not-built: ${fileURLToPath(entry)} is missing (run npm run build)\n`);
  process.exit(1);
}

try {
  await import(entry.href);
} catch (error) {
  // A package this one needs has not been built either (its dist/ is missing).
  const e = /** @type {{ code?: string; url?: string; message?: string }} */ (error);
  if (e.code !== 'ERR_MODULE_NOT_FOUND' || !/[\\/]dist[\\/]/.test(e.url ?? e.message ?? '')) throw error;
  process.stderr.write(`backchannel: not-built: ${e.message} (run npm run build)\n`);
  process.exit(1);
}
