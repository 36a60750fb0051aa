import { defineConfig } from 'vitest/config';

/**
 * Suites that also run against a cluster: three nodes and Redis seen as one server whose URL names
 * the nodes in turn (test/helpers/cluster.ts), so their clients are spread over the nodes. (The
 * presence suite passes against a cluster too — `BACKCHANNEL_TEST_CLUSTER=1 npx vitest run
 * test/integration/presence.test.ts` — but its 2,000-member test loads this 2-core machine for
 * half a minute, so it is not part of every run. The receive-session suite is not either: one of its
 * tests counts on one client's data reaching the room before another client's later request, an
 * order that only one server gives — across nodes the two travel different links.)
 */
const CLUSTER_SUITES = [
  'test/integration/conference.test.ts',
  'test/integration/calls.test.ts',
  'test/integration/data-sessions.test.ts',
  'test/integration/data-flow.test.ts',
  'test/integration/receive-backpressure.test.ts',
  'test/integration/streams.test.ts',
  'test/integration/stream-delivery.test.ts',
  'test/integration/rpc.test.ts',
  'test/integration/file-transfer.test.ts',
  'test/integration/whole-messages.test.ts',
  'test/integration/api.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default', './test/summary-reporter.ts'],
    projects: [
      { extends: true, test: { name: 'main', include: ['test/**/*.test.ts', 'packages/*/test/**/*.test.ts'] } },
      { extends: true, test: { name: 'cluster', include: CLUSTER_SUITES, env: { BACKCHANNEL_TEST_CLUSTER: '1' } } },
    ],
  },
});
