/**
 * Preloaded (`--import`) into every server process the benchmark starts — Backchannel's CLI and
 * the peers alike — so that all three are measured the same way:
 * - `bench:gc` forces two full garbage collections (needs `--expose-gc`) and answers with
 *   `process.memoryUsage()`, so idle memory can also be read without collectable garbage;
 * - `bench:mem` answers with `process.memoryUsage()` and `process.cpuUsage()` (used where
 *   /proc is not available);
 * - `bench:young` answers with the resident size of V8's young generation (new space and new
 *   large-object space), which V8 sizes by recent allocation, not by what the process holds;
 * - when the benchmark's IPC channel closes (the orchestrator exited or crashed) the server is
 *   sent SIGTERM, so no server outlives its run.
 * It does nothing else and adds no work to the data path.
 */
import { getHeapSpaceStatistics } from 'node:v8';

const youngBytes = () => {
  let n = 0;
  for (const s of getHeapSpaceStatistics()) if (s.space_name === 'new_space' || s.space_name === 'new_large_object_space') n += s.physical_space_size;
  return n;
};

if (process.send) {
  process.on('message', (msg) => {
    if (!msg || typeof msg !== 'object') return;
    if (msg.t === 'bench:gc') {
      if (typeof globalThis.gc === 'function') {
        globalThis.gc();
        globalThis.gc();
      }
      process.send({ t: 'bench:gc', id: msg.id, mem: process.memoryUsage() });
    } else if (msg.t === 'bench:young') {
      process.send({ t: 'bench:young', id: msg.id, bytes: youngBytes() });
    } else if (msg.t === 'bench:mem') {
      process.send({ t: 'bench:mem', id: msg.id, mem: process.memoryUsage(), cpu: process.cpuUsage() });
    }
  });
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  process.channel?.unref();
}
