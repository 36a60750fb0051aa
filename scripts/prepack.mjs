// `prepack` of every package (npm runs it in the package's directory before `npm pack` and
// `npm publish`): builds the package and what it references, drops compiled files whose source
// is gone (tsc -b never deletes them), bundles the client for browsers, builds the demo page into
// the server's dist/demo, and copies the repository's LICENSE into the package so that the
// tarball carries it.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = process.cwd();
const { name } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));

function run(args, cwd = dir) {
  const result = spawnSync(process.execPath, args, { cwd, stdio: ['ignore', process.stderr, process.stderr] });
  if (result.status !== 0) {
    process.stderr.write(`prepack ${name}: ${args.join(' ')} failed\n`);
    process.exit(result.status ?? 1);
  }
}

/** Deletes dist/**\/X.js, .d.ts and their maps when src/**\/X.ts does not exist. */
function dropOrphans(distDir, srcDir) {
  for (const entry of readdirSync(distDir, { withFileTypes: true })) {
    const path = join(distDir, entry.name);
    if (entry.isDirectory()) {
      // The server's dist/demo is the built demo page (packages/demo), not compiled from src.
      if (name === '@backchannel/server' && relative(dir, path) === join('dist', 'demo')) continue;
      dropOrphans(path, join(srcDir, entry.name));
      continue;
    }
    const stem = /^(.*?)(\.d\.ts|\.js)(\.map)?$/.exec(entry.name)?.[1];
    if (stem === undefined || existsSync(join(srcDir, `${stem}.ts`))) continue;
    if (name === '@backchannel/client' && stem === 'backchannel.browser') continue;
    rmSync(path);
    process.stderr.write(`prepack ${name}: removed ${relative(dir, path)} (its source is gone)\n`);
  }
}

run([createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-b', dir]);
dropOrphans(join(dir, 'dist'), join(dir, 'src'));
if (name === '@backchannel/client') run([join(root, 'scripts/bundle-browser.mjs')]);
if (name === '@backchannel/server') {
  const vite = join(dirname(createRequire(import.meta.url).resolve('vite/package.json')), 'bin/vite.js');
  run([vite, 'build', '--logLevel', 'warn'], join(root, 'packages/demo'));
}
copyFileSync(join(root, 'LICENSE'), join(dir, 'LICENSE'));
