// Bundles the client SDK for browsers (ESM) into packages/client/dist/backchannel.browser.js.
import { build } from 'esbuild';

await build({
  entryPoints: ['packages/client/dist/index.js'],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  outfile: 'packages/client/dist/backchannel.browser.js',
  sourcemap: true,
  logLevel: 'warning',
});
