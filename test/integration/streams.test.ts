import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Client, ErrorCode, platform, type BackchannelError, type ClientOptions, type StreamReader } from '@backchannel/client';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { deferred, next } from '../helpers/events.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess({ maxDataBitrateKbps: 0 });
});
afterAll(async () => {
  await server.stop();
});

let n = 0;
async function pair(optsB: ClientOptions = {}) {
  n++;
  const a = await Client.connect(server.url, await server.token(`sa${n}`, { conferences: ['*'] }, { name: `A${n}` }));
  const b = await Client.connect(server.url, await server.token(`sb${n}`), optsB);
  const ra = await a.joinConference(`streams-${n}`);
  const rb = await b.joinConference(`streams-${n}`);
  return { a, b, ra, rb, close: () => Promise.all([a.close(), b.close()]) };
}

/** Waits for the next stream on `topic`. */
function nextStream(room: { registerStreamHandler(t: string, h: (r: StreamReader, c: { from: string }) => void): void }, topic: string) {
  const d = deferred<{ reader: StreamReader; from: string }>();
  room.registerStreamHandler(topic, (reader, { from }) => d.resolve({ reader, from }));
  return d.promise;
}

describe('text streams', () => {
  it('sendText delivers the text with its header to the topic handler', async () => {
    const { a, ra, rb, close } = await pair();
    const got = nextStream(rb, 'chat');
    await ra.sendText('chat', 'hello there', { attributes: { lang: 'en' } });
    const { reader, from } = await got;
    expect(from).toBe(a.participantId);
    expect(reader.info).toMatchObject({ topic: 'chat', kind: 'text', mimeType: 'text/plain', totalLength: 11, attributes: { lang: 'en' }, sender: a.participantId });
    expect(reader.info.id).toMatch(/^ST_/);
    expect(Math.abs(reader.info.timestamp - Date.now())).toBeLessThan(60_000);
    expect(await reader.readAll()).toBe('hello there');
    await close();
  });

  it('never splits a multi-byte character across the chunks a reader yields', async () => {
    const { ra, rb, close } = await pair();
    const text = 'é'.repeat(40_000) + '🎉'.repeat(20_000) + '✓';
    const got = nextStream(rb, 'llm');
    const w = await ra.streamText('llm');
    await w.write(text.slice(0, 30_001));
    await w.write(text.slice(30_001));
    await w.close();
    const { reader } = await got;
    const chunks: string[] = [];
    for await (const c of reader) chunks.push(c as string);
    expect(chunks.length).toBeGreaterThan(2);
    for (const c of chunks) expect(c).not.toContain('\uFFFD');
    expect(chunks.join('')).toBe(text);
    await close();
  });
});

describe('byte streams and files', () => {
  it('sendBytes reports progress on both ends and the receiver gets the same bytes', async () => {
    const { ra, rb, close } = await pair();
    const data = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff);
    const seen: number[] = [];
    const got = deferred<StreamReader>();
    rb.registerStreamHandler('image', (reader) => {
      reader.on('progress', ({ bytes, total }) => {
        expect(total).toBe(300_000);
        seen.push(bytes);
      });
      got.resolve(reader);
    });
    const sent: number[] = [];
    await ra.sendBytes('image', data, { name: 'pic.bin', mimeType: 'image/png', onProgress: ({ bytes, total }) => {
      expect(total).toBe(300_000);
      sent.push(bytes);
    } });
    const reader = await got.promise;
    expect(reader.info).toMatchObject({ kind: 'bytes', name: 'pic.bin', mimeType: 'image/png', totalLength: 300_000 });
    const all = await reader.readAll();
    expect(Buffer.from(all as Uint8Array).equals(Buffer.from(data))).toBe(true);
    expect(sent.at(-1)).toBe(300_000);
    expect(seen.at(-1)).toBe(300_000);
    expect(sent.length).toBeGreaterThan(1);
    await close();
  });

  it('sendFile sends a file from a path; the receiver verifies its SHA-256', async () => {
    const { ra, rb, close } = await pair();
    const dir = mkdtempSync(join(tmpdir(), 'bc-file-'));
    const path = join(dir, 'notes.txt');
    const content = Buffer.from('line\n'.repeat(50_000));
    writeFileSync(path, content);
    const got = nextStream(rb, 'files');
    const res = await ra.sendFile('files', path);
    expect(res.bytes).toBe(content.byteLength);
    const { reader } = await got;
    expect(reader.info).toMatchObject({ name: 'notes.txt', totalLength: content.byteLength });
    const all = (await reader.readAll()) as Uint8Array;
    expect(createHash('sha256').update(all).digest('hex')).toBe(createHash('sha256').update(content).digest('hex'));
    await close();
  });

  it('a SHA-256 mismatch fails the reader with stream-integrity, and the sender learns it', async () => {
    const { ra, rb, b, close } = await pair();
    const original = platform.createHasher;
    let first = true;
    // The sender's hasher (created first) reports a wrong digest, as a corrupted transfer would.
    platform.createHasher = () => {
      const h = original();
      if (!first) return h;
      first = false;
      return { update: h.update, hex: () => '0'.repeat(64) };
    };
    try {
      const got = nextStream(rb, 'files');
      const sent = ra.sendBytes('files', new Uint8Array(1000).fill(1));
      const { reader } = await got;
      await expect(reader.readAll()).rejects.toMatchObject({ code: ErrorCode.StreamIntegrity });
      await expect(sent).rejects.toMatchObject({
        code: ErrorCode.StreamNotDelivered,
        details: { failed: [{ participantId: b.participantId, reason: { code: 'stream-integrity' } }], delivered: [] },
      });
    } finally {
      platform.createHasher = original;
    }
    await close();
  });

  it('abort(reason) and a sender leaving mid-stream end the reader with stream-aborted', async () => {
    const { ra, rb, b, close } = await pair();
    const got = nextStream(rb, 'raw');
    const w = await ra.streamBytes('raw', { totalLength: 10 });
    await w.write(new Uint8Array([1, 2, 3]));
    await w.abort('user cancelled');
    const { reader } = await got;
    const chunks: Uint8Array[] = [];
    const err = await (async () => {
      try {
        for await (const c of reader) chunks.push(c as Uint8Array);
      } catch (e) {
        return e as BackchannelError;
      }
    })();
    expect(chunks.map((c) => [...c])).toEqual([[1, 2, 3]]); // data before the abort is delivered
    expect(err).toMatchObject({ code: ErrorCode.StreamAborted, details: { reason: 'user cancelled' } });

    const got2 = nextStream(rb, 'raw2');
    const w2 = await ra.streamBytes('raw2');
    await w2.write(new Uint8Array(10));
    const { reader: r2 } = await got2;
    const failed = r2.readAll().then(
      () => undefined,
      (e: unknown) => e,
    );
    await ra.leave();
    expect(await failed).toMatchObject({ code: ErrorCode.StreamAborted, details: { reason: 'sender-left' } });
    expect(b.connected).toBe(true);
    await close();
  });

  it('a large transfer does not block a chat message sent after it', async () => {
    const { ra, rb, close } = await pair();
    const SIZE = 48 * 1024 * 1024;
    const file = nextStream(rb, 'file');
    const chat = nextStream(rb, 'chat');
    const sending = ra.sendBytes('file', new Uint8Array(SIZE));
    const { reader: fileReader } = await file;
    let fileDone = false;
    const fileRead = (async () => {
      for await (const _ of fileReader) void _;
      fileDone = true;
    })();
    await ra.sendText('chat', 'are you there?');
    const { reader: chatReader } = await chat;
    expect(await chatReader.readAll()).toBe('are you there?');
    expect(fileDone).toBe(false);
    expect(fileReader.bytesReceived).toBeLessThan(SIZE);
    await sending;
    await fileRead;
    await close();
  }, 60_000);
});

describe('handlers and limits', () => {
  it('a handler registered shortly after the stream arrived still gets all of it', async () => {
    const { ra, rb, b, close } = await pair();
    const fence = deferred();
    rb.registerStreamHandler('fence', () => fence.resolve());
    const late = ra.sendText('late', 'first come');
    await ra.sendText('fence', '.');
    await fence.promise; // the 'late' stream has arrived, with no handler yet
    const got = nextStream(rb, 'late');
    expect(await (await got).reader.readAll()).toBe('first come');
    expect((await late).delivered).toEqual([b.participantId]); // confirmed once the handler took it
    await close();
  });

  it('a stream for a topic without a handler is refused back to the sender', async () => {
    const { ra, rb, b, close } = await pair({ streamHandlerWaitMs: 150 });
    const refusedHere = next<BackchannelError>(rb, 'dataSessionError');
    const w = await ra.streamText('nobody-listens', { destination: b.participantId });
    const refused = next<{ participantId: string; reason: { code: string } }>(w, 'refused');
    await w.write('hello?');
    expect(await refused).toMatchObject({ participantId: b.participantId, reason: { code: 'no-handler' } });
    await expect(w.close()).rejects.toMatchObject({ code: ErrorCode.StreamRefused });
    expect((await refusedHere).code).toBe(ErrorCode.StreamRefused);
    // A one-shot send waits for the receiver's answer: it rejects, and the room reports it too.
    const late = next<{ id: string; topic: string; participantId: string; reason: { code: string } }>(ra, 'streamRefused');
    const err = await ra.sendText('nobody-listens', 'again').catch((e: BackchannelError) => e);
    expect(err).toMatchObject({ code: ErrorCode.StreamRefused, details: { failed: [{ participantId: b.participantId, reason: { code: 'no-handler' } }] } });
    expect(await late).toMatchObject({ topic: 'nobody-listens', participantId: b.participantId, reason: { code: 'no-handler' } });
    await close();
  });

  it('outgoing and incoming stream limits are clear errors, not hangs', async () => {
    n++;
    const a = await Client.connect(server.url, await server.token(`lim-a${n}`), { maxOutgoingStreams: 2 });
    const b = await Client.connect(server.url, await server.token(`lim-b${n}`), { maxIncomingStreams: 1 });
    const ra = await a.joinConference(`limits-${n}`);
    const rb = await b.joinConference(`limits-${n}`);
    const w1 = await ra.streamText('t');
    const w2 = await ra.streamText('t', { destination: b.participantId });
    await expect(ra.streamText('t')).rejects.toMatchObject({ code: ErrorCode.TooManyStreams, details: { limit: 2 } });
    const first = deferred<StreamReader>();
    rb.registerStreamHandler('t', (r) => first.resolve(r));
    const refused = next<{ reason: { code: string } }>(w2, 'refused');
    await w1.write('one');
    await w2.write('two');
    expect((await refused).reason.code).toBe('too-many-streams');
    await w1.close();
    expect(await (await first.promise).readAll()).toBe('one');
    const w3 = await ra.streamText('t'); // a slot is free again once w1 closed
    await w3.close();
    await Promise.all([a.close(), b.close()]);
  });
});
