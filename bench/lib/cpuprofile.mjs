/**
 * Summarises a V8 `.cpuprofile` (as written by `node --cpu-prof`): self time per function and per
 * source file, busiest first.
 */
import { readFileSync } from 'node:fs';
import { REPO_DIR } from './procs.mjs';

function shortUrl(url) {
  if (!url) return '';
  let u = url.replace(/^file:\/\//, '');
  if (u.startsWith(REPO_DIR)) u = u.slice(REPO_DIR.length + 1);
  return u.replace(/^.*node_modules\//, '');
}

/** `{ totalMs, idleMs, functions: [{ name, where, selfMs, pct }], files: [...] }`, pct of busy time. */
export function summarizeProfile(path, top = 25) {
  const prof = JSON.parse(readFileSync(path, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const { samples, timeDeltas } = prof;
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the time since the previous sample: it belongs to the previous sample's node.
    const dt = i + 1 < timeDeltas.length ? timeDeltas[i + 1] : 0;
    self.set(samples[i], (self.get(samples[i]) ?? 0) + dt);
  }
  const fns = new Map();
  const files = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const { callFrame: cf } = byId.get(id);
    total += us;
    if (cf.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const where = cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'}\u0000${where}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    const file = cf.url ? shortUrl(cf.url) : cf.functionName;
    files.set(file, (files.get(file) ?? 0) + us);
  }
  const busy = total - idle;
  const list = (m) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => {
        const [name, where = ''] = k.split('\u0000');
        return { name, where, selfMs: us / 1000, pct: (100 * us) / busy };
      });
  return { totalMs: total / 1000, idleMs: idle / 1000, busyMs: busy / 1000, functions: list(fns), files: list(files) };
}
