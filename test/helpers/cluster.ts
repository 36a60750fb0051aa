/**
 * A cluster for tests: a real `redis-server` on a random port and N real `backchannel serve`
 * processes coordinated through it. `asOneServer` makes a cluster look like one ServerProcess whose
 * `url` names the nodes in turn, so tests written for one server spread their clients over the
 * nodes (`BACKCHANNEL_TEST_CLUSTER=1`, see startServerProcess).
 */
import { startServerProcess, type ServerProcess } from './server.js';
import { startRedis } from './redis.js';

export interface TestCluster {
  nodes: ServerProcess[];
  redis: Awaited<ReturnType<typeof startRedis>>;
  /** Stops every node (SIGTERM, in parallel) and Redis. */
  stop(): Promise<void>;
}

/**
 * Faster failure detection than the defaults (1 s / 3 s) for tests: heartbeat every 200 ms, a node
 * is dead after 1.5 s (long enough for a loaded 2-core machine never to miss it by accident).
 */
export const TEST_CLUSTER_TIMINGS = { clusterHeartbeatMs: 200, clusterNodeTtlMs: 1500 };

/** Resolves once `done()` holds, re-checked on each log line of `node`. */
function untilLogged(node: ServerProcess, done: () => boolean, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (done()) return resolve();
    const timer = setTimeout(() => {
      node.proc.stdout!.off('data', check);
      reject(new Error('timed out waiting for the nodes to see each other'));
    }, timeoutMs);
    const check = () =>
      setImmediate(() => {
        if (!done()) return;
        clearTimeout(timer);
        node.proc.stdout!.off('data', check);
        resolve();
      });
    node.proc.stdout!.on('data', check);
  });
}

/** Starts Redis and `n` nodes with `config` (each node may add its own through `perNode`). */
export async function startCluster(n: number, config: Record<string, unknown> = {}, perNode: (i: number) => Record<string, unknown> = () => ({})): Promise<TestCluster> {
  const redis = await startRedis();
  const nodes: ServerProcess[] = [];
  try {
    // One after the other: each takes the next free node number, so node i is number i + 1.
    for (let i = 0; i < n; i++) nodes.push(await startServerProcess({ ...TEST_CLUSTER_TIMINGS, ...config, ...perNode(i), redis: redis.url }, {}, { cluster: false }));
    // Every node has seen every other (a node is known to the others one heartbeat after it starts).
    await Promise.all(nodes.map((node) => untilLogged(node, () => node.logs.filter((l) => l.msg === 'a node joined the cluster').length >= n - 1)));
  } catch (error) {
    await Promise.all(nodes.map((s) => s.stop()));
    await redis.stop();
    throw error;
  }
  return {
    nodes,
    redis,
    stop: async () => {
      await Promise.all(nodes.map((s) => s.stop()));
      await redis.stop();
    },
  };
}

/**
 * The cluster as one server: `url` (and `port`) give the nodes in turn, `httpUrl` the last node's
 * (the server API answers for the whole cluster on any node), `logs` every node's, `stop()` the
 * whole cluster.
 */
export function asOneServer(cluster: TestCluster): ServerProcess {
  const { nodes } = cluster;
  let turn = 0;
  const first = nodes[0]!;
  return {
    get url() {
      return nodes[turn++ % nodes.length]!.url;
    },
    get port() {
      return nodes[turn % nodes.length]!.port;
    },
    httpUrl: nodes[nodes.length - 1]!.httpUrl,
    proc: first.proc,
    get logs() {
      return nodes.flatMap((s) => s.logs);
    },
    token: first.token,
    stop: async () => {
      const codes = await Promise.all(nodes.map((s) => s.stop()));
      await cluster.redis.stop();
      return codes.find((c) => c !== 0) ?? codes[0] ?? null;
    },
  };
}
