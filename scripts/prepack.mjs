// `prepack` of every package (run by npm in the package's directory before `npm pack` or
// `npm publish`): builds the package and what it references, bundles the client for browsers, and
// copies the repository's LICENSE into the package so the tarball carries it.
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = process.cwd();
const { name } = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8'));

function run(args) {
  const result = spawnSync(process.execPath, args, { cwd: dir, stdio: 'inherit' });
  if (result.status !== 0) {
    process.stderr.write(`prepack ${name}: ${args.join(' ')} failed\n`);
    process.exit(result.status ?? 1);
  }
}

run([createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-b', dir]);
if (name === '@backchannel/client') run([`${root}scripts/bundle-browser.mjs`]);
copyFileSync(`${root}LICENSE`, `${dir}/LICENSE`);
