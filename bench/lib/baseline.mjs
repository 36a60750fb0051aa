/**
 * The "before" build for before/after comparisons: an earlier commit of this repository checked
 * out as a git worktree outside the repository (default `<tmpdir>/bc-base`, or
 * BENCH_BASELINE_DIR), with its own `npm ci` and `npm run build`. The benchmark runs it as the
 * system `backchannel-baseline`: its server CLI and its client SDK are loaded from that worktree,
 * everything else (the benchmark code, the peers, the Node flags) is this checkout's.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** Where the baseline worktree lives. Workers read the same variable, so it is set for them too. */
export const BASELINE_DIR = resolve(process.env.BENCH_BASELINE_DIR || join(tmpdir(), 'bc-base'));
process.env.BENCH_BASELINE_DIR = BASELINE_DIR;

/**
 * Entry points inside a built worktree. The server CLI moved to packages/cli after the session
 * layer; earlier commits have it in packages/server.
 */
const CLI_CANDIDATES = ['packages/cli/dist/cli.js', 'packages/server/dist/cli.js'];
const CLIENT = 'packages/client/dist/index.node.js';
const SERVER_SDK = 'packages/server-sdk/dist/index.js';

/** The baseline's server CLI, client SDK and server SDK entry points (undefined when not built). */
export function baselineEntries(dir = BASELINE_DIR) {
  const cli = CLI_CANDIDATES.map((p) => join(dir, p)).find((p) => existsSync(p));
  const client = join(dir, CLIENT);
  const serverSdk = join(dir, SERVER_SDK);
  if (!cli || !existsSync(client) || !existsSync(serverSdk)) return undefined;
  return { cli, client, serverSdk };
}

const git = (cwd, ...args) => execFileSync('git', ['-C', cwd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/**
 * What is at BASELINE_DIR: `{ dir, commit, built }` when it is a git checkout (`commit`: full hash
 * of its HEAD; `built`: its packages are built), undefined when there is nothing there.
 */
export function baselineInfo(dir = BASELINE_DIR) {
  if (!existsSync(dir)) return undefined;
  let commit;
  try {
    commit = git(dir, 'rev-parse', 'HEAD');
  } catch {
    return { dir, commit: undefined, built: false };
  }
  return { dir, commit, built: baselineEntries(dir) !== undefined };
}

/**
 * Makes BASELINE_DIR a built worktree of `rev` (of the repository at `repoDir`): reuses it when it
 * is already at that commit and built; otherwise adds the worktree (`git worktree add --detach`),
 * installs its dependencies from the lockfile (`npm ci --prefer-offline`: from npm's cache where
 * it can) and builds it. Throws, saying what to do, when BASELINE_DIR holds something else.
 * Returns baselineInfo().
 */
export function prepareBaseline(repoDir, rev, log) {
  const want = git(repoDir, 'rev-parse', '--verify', `${rev}^{commit}`);
  let info = baselineInfo();
  if (info && info.commit !== want) {
    throw new Error(
      `${BASELINE_DIR} holds ${info.commit ? `commit ${info.commit.slice(0, 12)}` : 'something that is not a git checkout'}, not ${want.slice(0, 12)}: ` +
        `remove it (git worktree remove --force ${BASELINE_DIR}) or set BENCH_BASELINE_DIR to another directory`,
    );
  }
  if (!info) {
    log(`bench: adding a worktree of ${want.slice(0, 12)} at ${BASELINE_DIR}`);
    git(repoDir, 'worktree', 'add', '--detach', BASELINE_DIR, want);
    info = baselineInfo();
  }
  if (!info.built) {
    const npm = (...args) => {
      log(`bench: (in ${BASELINE_DIR}) npm ${args.join(' ')}`);
      execFileSync('npm', args, { cwd: BASELINE_DIR, stdio: ['ignore', 'inherit', 'inherit'] });
    };
    if (!existsSync(join(BASELINE_DIR, 'node_modules'))) npm('ci', '--prefer-offline', '--no-audit', '--no-fund');
    npm('run', 'build');
    info = baselineInfo();
    if (!info.built) throw new Error(`the build in ${BASELINE_DIR} did not produce ${CLIENT} and a server CLI`);
  }
  return info;
}
