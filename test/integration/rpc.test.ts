import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, ErrorCode, RPC_MAX_PAYLOAD_BYTES, type Call, type RpcInvocation } from '@backchannel/client';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { deferred, until } from '../helpers/events.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess();
});
afterAll(async () => {
  await server.stop();
});

let n = 0;
async function pair() {
  n++;
  const a = await Client.connect(server.url, await server.token(`ra${n}`));
  const b = await Client.connect(server.url, await server.token(`rb${n}`));
  const ra = await a.joinConference(`rpc-${n}`);
  const rb = await b.joinConference(`rpc-${n}`);
  // In a cluster, b's join can return before a, connected to another node, has heard of b.
  await until(ra, 'participantJoined', () => ra.participants.has(b.participantId));
  return { a, b, ra, rb, close: () => Promise.all([a.close(), b.close()]) };
}

describe('RPC', () => {
  it('calls a registered method and returns its response, with the caller identified', async () => {
    const { a, b, ra, rb, close } = await pair();
    let seen: RpcInvocation | undefined;
    rb.registerRpcMethod('sum', async (inv) => {
      seen = inv;
      const { x, y } = JSON.parse(inv.payload) as { x: number; y: number };
      return JSON.stringify({ sum: x + y });
    });
    const reply = await ra.performRpc({ destination: b.participantId, method: 'sum', payload: JSON.stringify({ x: 2, y: 40 }), timeoutMs: 5_000 });
    expect(JSON.parse(reply)).toEqual({ sum: 42 });
    expect(seen).toMatchObject({ caller: a.participantId, responseTimeout: 5_000 });
    expect(seen!.requestId).toMatch(/^RQ_/);
    await close();
  });

  it('works in a 1:1 call too', async () => {
    n++;
    const a = await Client.connect(server.url, await server.token(`rca${n}`));
    const b = await Client.connect(server.url, await server.token(`rcb${n}`));
    const accepted = deferred<Call>();
    b.on('incomingCall', (inv) => void inv.accept().then(accepted.resolve));
    const call = await a.makeCall(`rcb${n}`);
    const calleeCall = await accepted.promise;
    calleeCall.registerRpcMethod('ping', () => 'pong');
    if (call.state !== 'connected') await new Promise((r) => call.once('connected', () => r(undefined)));
    expect(await call.performRpc({ destination: b.participantId, method: 'ping' })).toBe('pong');
    await Promise.all([a.close(), b.close()]);
  });

  it('typed errors: unsupported method, application error, timeout, payload too large, unknown destination', async () => {
    const { b, ra, rb, close } = await pair();
    rb.registerRpcMethod('fail', () => {
      throw new Error('disk is full');
    });
    rb.registerRpcMethod('slow', () => new Promise<string>(() => undefined));
    rb.registerRpcMethod('huge', () => 'x'.repeat(RPC_MAX_PAYLOAD_BYTES + 1));
    const call = (method: string, payload = '', timeoutMs = 5_000) => ra.performRpc({ destination: b.participantId, method, payload, timeoutMs });
    await expect(call('nope')).rejects.toMatchObject({ code: ErrorCode.RpcUnsupportedMethod });
    await expect(call('fail')).rejects.toMatchObject({ code: ErrorCode.RpcApplicationError, message: 'disk is full' });
    await expect(call('slow', '', 200)).rejects.toMatchObject({ code: ErrorCode.RpcTimeout });
    await expect(call('sum', 'y'.repeat(RPC_MAX_PAYLOAD_BYTES + 1))).rejects.toMatchObject({ code: ErrorCode.RpcPayloadTooLarge });
    await expect(call('huge')).rejects.toMatchObject({ code: ErrorCode.RpcPayloadTooLarge });
    await expect(ra.performRpc({ destination: 'PA_nobody', method: 'x' })).rejects.toMatchObject({ code: ErrorCode.ParticipantNotFound });
    await close();
  });

  it('recipient-disconnected when the callee leaves before responding', async () => {
    const { b, ra, rb, close } = await pair();
    const started = deferred();
    rb.registerRpcMethod('wait', () => {
      started.resolve();
      return new Promise<string>(() => undefined);
    });
    const pending = ra.performRpc({ destination: b.participantId, method: 'wait', timeoutMs: 10_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await started.promise;
    await b.close();
    expect(await pending).toMatchObject({ code: ErrorCode.RpcRecipientDisconnected });
    await close();
  });

  it('each of many concurrent calls gets exactly its own response, and each handler runs once', async () => {
    const { b, ra, rb, close } = await pair();
    let calls = 0;
    rb.registerRpcMethod('echo', async ({ payload }) => {
      calls++;
      await new Promise((r) => setTimeout(r, Math.random() * 5));
      return payload;
    });
    const N = 200;
    const replies = await Promise.all(Array.from({ length: N }, (_, i) => ra.performRpc({ destination: b.participantId, method: 'echo', payload: `#${i}` })));
    expect(replies).toEqual(Array.from({ length: N }, (_, i) => `#${i}`));
    expect(calls).toBe(N);
    await close();
  });
});
