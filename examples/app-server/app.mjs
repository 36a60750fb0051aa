#!/usr/bin/env node
/**
 * Example app server for Backchannel: the part of a company's backend that
 *
 * 1. mints access tokens for its users (GET /token?user=<id>),
 * 2. receives Backchannel webhooks (POST /webhooks), verifies them, and on `call.incoming`
 *    "sends a push notification" to the callee (here: a log line and an in-memory inbox the
 *    callee's device can poll with GET /pushes?user=<id>),
 * 3. uses the server API: when a call starts, it sends both sides an app control message on
 *    stream 100 ({"type":"call-started"}), which clients receive as data from "server".
 *
 * Configuration (environment):
 *   BACKCHANNEL_URL         server address, default http://127.0.0.1:7800
 *   BACKCHANNEL_API_KEY     API key, default devkey
 *   BACKCHANNEL_API_SECRET  API secret, default devsecret
 *   HOST, PORT              where this app listens, default 127.0.0.1:8787 (PORT=0: any free port)
 *
 * Run the server with `backchannel serve --webhook http://127.0.0.1:8787/webhooks`.
 */
import { createServer } from 'node:http';
import { ServerApiClient, createAccessToken, createMemorySeenStore, verifyWebhook } from '@backchannel/server-sdk';

const serverUrl = process.env.BACKCHANNEL_URL ?? 'http://127.0.0.1:7800';
const apiKey = process.env.BACKCHANNEL_API_KEY ?? 'devkey';
const apiSecret = process.env.BACKCHANNEL_API_SECRET ?? 'devsecret';
const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? 8787);

/** Stream id this app uses for its own control messages to clients. */
const APP_CONTROL_STREAM = 100;

const api = new ServerApiClient(serverUrl, { apiKey, apiSecret });
// Webhooks arrive at least once: remember event ids so each is handled once.
const seen = createMemorySeenStore();
/** Pending push notifications per user id (what a real app would hand to APNs/FCM). */
const inbox = new Map();

function log(line) {
  process.stdout.write(`[app-server] ${line}\n`);
}

/** Sends a push notification. A real app calls its push provider here. */
function push(userId, notification) {
  const list = inbox.get(userId) ?? [];
  list.push(notification);
  inbox.set(userId, list);
  log(`push → ${userId}: incoming call ${notification.callId} from ${notification.caller}${notification.appParam ? ` (appParam ${JSON.stringify(notification.appParam)})` : ''}`);
}

async function onEvent(event) {
  log(`event ${event.type} ${event.room.kind}:${event.room.name} #${event.sequence}`);
  switch (event.type) {
    case 'call.incoming':
      push(event.callee.userId, { callId: event.callId, caller: event.caller.userId, appParam: event.appParam });
      break;
    case 'call.started':
      inbox.delete(event.callee.userId);
      await api.sendData(event.callId, { streamId: APP_CONTROL_STREAM, data: JSON.stringify({ type: 'call-started', callId: event.callId }) });
      log(`sent call-started to both sides of ${event.callId}`);
      break;
    case 'call.ended':
      log(`call ${event.callId} ended: ${event.reason.code} after ${event.durationMs} ms`);
      break;
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://app.invalid');
  try {
    if (req.method === 'POST' && url.pathname === '/webhooks') {
      const body = await readBody(req);
      let event;
      try {
        event = await verifyWebhook(body, req.headers, { apiSecret, seen });
      } catch (error) {
        if (error.code === 'webhook-replayed') return json(res, 200, { duplicate: true });
        log(`rejected webhook: ${error.code}`);
        return json(res, 401, { code: error.code, message: error.message });
      }
      // Answer first: the server waits for this answer before sending the room's next event.
      json(res, 200, { ok: true });
      await onEvent(event).catch((error) => log(`handling ${event.type} failed: ${error.code ?? ''} ${error.message}`));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/token') {
      // A real app authenticates its user here before minting a token.
      const user = url.searchParams.get('user');
      if (!user) return json(res, 400, { message: 'user is required' });
      const token = await createAccessToken({ apiKey, apiSecret, userId: user, ttl: '1h', grants: { calls: true, conferences: [`${user}-*`] } });
      return json(res, 200, { token, url: serverUrl.replace(/^http/, 'ws') });
    }
    if (req.method === 'GET' && url.pathname === '/pushes') {
      return json(res, 200, { pushes: inbox.get(url.searchParams.get('user') ?? '') ?? [] });
    }
    json(res, 404, { message: 'not found' });
  } catch (error) {
    json(res, 500, { message: error.message });
  }
});

server.listen(port, host, () => {
  const { port: bound } = server.address();
  log(`listening on http://${host}:${bound} (webhooks at /webhooks, server ${serverUrl})`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
