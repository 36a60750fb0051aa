/** The cluster settings: off by default, derived defaults with `redis` set, and their validation. */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, resolveConfig } from '@backchannel/server';

const REDIS = 'redis://127.0.0.1:6379';

function refusal(input: Parameters<typeof resolveConfig>[0]): { code: string; message: string } | undefined {
  try {
    resolveConfig(input);
    return undefined;
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message };
  }
}

describe('cluster settings', () => {
  it('change nothing without redis', () => {
    expect(resolveConfig({})).toEqual(DEFAULT_CONFIG);
    expect(resolveConfig({ host: '0.0.0.0' }).clusterAddress).toBe('');
  });

  it('derive the node id, the address and the secret when redis is set', () => {
    const a = resolveConfig({ redis: REDIS, port: 7801, apiKeys: { first: 'first-secret', second: 'second-secret' } });
    const b = resolveConfig({ redis: REDIS, port: 7801, apiKeys: { first: 'first-secret' } });
    expect(a.clusterAddress).toBe('ws://127.0.0.1:7801');
    expect(a.clusterNodeId).toMatch(/^[0-9a-f]{16}$/);
    expect(b.clusterNodeId).not.toBe(a.clusterNodeId);
    expect(a.clusterSecret).toBe(b.clusterSecret);
    expect(a.clusterSecret).toBe(createHmac('sha256', 'first-secret').update('backchannel cluster secret v1').digest('base64url'));
    expect(resolveConfig({ redis: 'rediss://:pw@redis.internal:6380/2', host: '::1', port: 7801, tlsCertFile: 'c.pem', tlsKeyFile: 'k.pem' }).clusterAddress).toBe('wss://[::1]:7801');
    expect(resolveConfig({ redis: REDIS, host: '0.0.0.0', clusterAddress: 'wss://node-1.example.com', clusterNodeId: 'node-1', clusterSecret: 'a-shared-cluster-secret' })).toMatchObject({
      clusterAddress: 'wss://node-1.example.com',
      clusterNodeId: 'node-1',
      clusterSecret: 'a-shared-cluster-secret',
    });
  });

  it('refuse what cannot work, naming the setting', () => {
    expect(refusal({ redis: REDIS, host: '0.0.0.0' })).toEqual({ code: 'config-invalid', message: expect.stringContaining('"clusterAddress" is needed') });
    expect(refusal({ redis: 'http://127.0.0.1:6379' })?.message).toContain('setting "redis" must be a redis:// or rediss:// URL');
    expect(refusal({ clusterAddress: 'http://node-1:7800' })?.message).toContain('setting "clusterAddress" must be a ws:// or wss:// URL');
    expect(refusal({ clusterNodeId: 'a:b' })?.message).toContain('setting "clusterNodeId"');
    expect(refusal({ clusterHeartbeatMs: 1_000, clusterNodeTtlMs: 1_999 })?.message).toContain('"clusterNodeTtlMs" must be at least twice "clusterHeartbeatMs"');
    expect(refusal({ clusterHeartbeatMs: 5 })?.message).toContain('setting "clusterHeartbeatMs" must be an integer from 10 to 60000');
    expect(refusal({ clusterSecret: 'short' })?.message).toContain('setting "clusterSecret" must be at least 16 characters');
  });
});
