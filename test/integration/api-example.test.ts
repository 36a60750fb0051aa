/**
 * The example app server (examples/app-server) end to end: a call to a user who is not connected
 * fires `call.incoming`, the app "pushes" a notification, the callee's device connects and
 * accepts, and the app uses the server API to greet both sides of the started call.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type CallInvite, type Reason } from '@backchannel/client';
import { API_KEY, API_SECRET, startServerProcess, type ServerProcess } from '../helpers/server.js';
import { next } from '../helpers/events.js';
import { freePort, receiver } from '../helpers/api.js';

const APP = resolve(import.meta.dirname, '../../examples/app-server/app.mjs');

let server: ServerProcess;
let app: ChildProcess;
let appUrl: string;
const lines: string[] = [];
const waiters = new Set<() => void>();

function untilLine(pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`app never logged ${pattern}; got:\n${lines.join('\n')}`)), 10_000);
    const check = () => {
      for (const l of lines) {
        const m = pattern.exec(l);
        if (!m) continue;
        clearTimeout(timer);
        waiters.delete(check);
        return resolvePromise(m);
      }
    };
    waiters.add(check);
    check();
  });
}

beforeAll(async () => {
  // The server's webhook URL must be known before it starts, and the app needs the server's URL:
  // reserve the app's port first.
  const port = await freePort();
  // Webhook URLs from the environment, as `backchannel serve` reads them in a deployment.
  server = await startServerProcess({ webhookRetryBaseMs: 20, webhookRetryMaxMs: 100 }, { BACKCHANNEL_WEBHOOK_URLS: `http://127.0.0.1:${port}/webhooks` });
  app = spawn(process.execPath, [APP], {
    env: { ...process.env, PORT: String(port), BACKCHANNEL_URL: server.httpUrl, BACKCHANNEL_API_KEY: API_KEY, BACKCHANNEL_API_SECRET: API_SECRET },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  createInterface({ input: app.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters) w();
  });
  appUrl = (await untilLine(/listening on (http:\/\/\S+)/))[1]!;
});
afterAll(async () => {
  app.kill('SIGTERM');
  await server.stop();
});

async function tokenFor(user: string): Promise<{ token: string; url: string }> {
  return (await (await fetch(`${appUrl}/token?user=${user}`)).json()) as { token: string; url: string };
}

describe('example app server: push-notification flow', () => {
  it('incoming call webhook → push → the callee connects and accepts → both get the app’s greeting', async () => {
    const alice = await tokenFor('alice');
    expect(alice.url).toBe(server.url);
    const caller = await Client.connect(alice.url, alice.token);
    const call = await caller.makeCall('bob', { appParam: 'video' });

    // bob is not connected: the app server learns of the call by webhook and pushes.
    const push = await untilLine(/push → bob: incoming call (CA_\w+) from alice \(appParam "video"\)/);
    expect(push[1]).toBe(call.callId);
    const inbox = (await (await fetch(`${appUrl}/pushes?user=bob`)).json()) as { pushes: { callId: string }[] };
    expect(inbox.pushes).toEqual([{ callId: call.callId, caller: 'alice', appParam: 'video' }]);

    // bob's device wakes up, connects with a token from the app, and answers the pushed call.
    const bobToken = await tokenFor('bob');
    const callee = await Client.connect(bobToken.url, bobToken.token);
    const invite = (await callee.getCall(call.callId)) as CallInvite;
    expect(invite.caller.userId).toBe('alice');
    const connected = next(call, 'connected');
    const answered = await invite.accept();
    await connected;

    // The app saw call.started and greeted both sides through the server API (stream 100).
    const greetings = await Promise.all([receiver(call, 100), receiver(answered, 100)]);
    await untilLine(new RegExp(`sent call-started to both sides of ${call.callId}`));
    for (const g of greetings) {
      const [msg] = await g.until(1);
      expect(msg!.from).toBe('server');
      expect(JSON.parse(msg!.text)).toEqual({ type: 'call-started', callId: call.callId });
    }

    const ended = next<{ reason: Reason }>(answered, 'ended');
    await call.end();
    expect((await ended).reason.code).toBe('normal');
    await untilLine(new RegExp(`call ${call.callId} ended: normal`));
    expect((await (await fetch(`${appUrl}/pushes?user=bob`)).json()).pushes).toEqual([]);
    await caller.close();
    await callee.close();
  });
});
