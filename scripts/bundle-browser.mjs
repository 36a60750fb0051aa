// Bundles the client SDK for browsers (ESM) into packages/client/dist/backchannel.browser.js
// (run from any directory: `npm run build` and the client's prepack both use it). Each file is
// written under a temporary name and renamed, so a reader never sees half a bundle.
import { renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const client = fileURLToPath(new URL('../packages/client/', import.meta.url));

const { outputFiles } = await build({
  entryPoints: [`${client}dist/index.js`],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  outfile: `${client}dist/backchannel.browser.js`,
  sourcemap: true,
  logLevel: 'warning',
  write: false,
});
for (const file of outputFiles) {
  writeFileSync(`${file.path}.${process.pid}.tmp`, file.contents);
  renameSync(`${file.path}.${process.pid}.tmp`, file.path);
}
