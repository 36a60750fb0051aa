/**
 * The demo web app end to end: `backchannel serve --demo` (a production key with the demo flag)
 * serves the page, and three (then four) Chromium contexts use it the way people would — join a
 * room, see each other, chat both ways, move cursors, drop a 20 MiB file, call each other — while
 * the tests read only what the pages show. One page goes through a proxy whose connections are cut,
 * to show the reconnecting and resumed states. Screenshots of every screen go to
 * test-results/demo/ (not committed); the time to interactive and the cursor latency between two
 * pages are written there too and printed.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@backchannel/client';
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/browser.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';

const ARTIFACTS = resolve(import.meta.dirname, '../../test-results/demo');
const ROOM = 'demo-standup';
const FILE_BYTES = 20 * 1024 * 1024;
const WAIT = { timeout: 15_000 };

declare global {
  interface Window {
    /** Set by the tests (not by the app): what a MutationObserver saw. */
    observed?: { progress: number[]; cursor: { x: string; at: number }[] };
  }
}

interface DemoPage {
  name: string;
  page: Page;
  /** Console errors and page errors. */
  errors: string[];
}

let server: ServerProcess;
let proxy: FaultProxy;
let browser: Browser;
const pages: DemoPage[] = [];
const metrics: Record<string, unknown> = {};

/** Byte `i` of the test file (a pattern, so the digest can be computed here too). */
const patternSha256 = (() => {
  const bytes = new Uint8Array(FILE_BYTES);
  for (let i = 0; i < FILE_BYTES; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return createHash('sha256').update(bytes).digest('hex');
})();

async function openPage(name: string, options: { base?: string; width?: number; height?: number } = {}): Promise<DemoPage> {
  const context = await browser.newContext({ viewport: { width: options.width ?? 1280, height: options.height ?? 900 } });
  const page = await context.newPage();
  const demo: DemoPage = { name, page, errors: [] };
  page.on('pageerror', (e) => demo.errors.push(`pageerror: ${String(e)}`));
  page.on('console', (m) => void (m.type() === 'error' && demo.errors.push(m.text())));
  pages.push(demo);
  await page.goto(`${options.base ?? server.httpUrl}/`);
  await page.locator('[data-screen=join] #name').waitFor(WAIT);
  return demo;
}

/** Fills the join form and presses Join; resolves when the room is shown. */
async function join(demo: DemoPage, room = ROOM): Promise<void> {
  await demo.page.fill('#name', demo.name);
  await demo.page.fill('#room', room);
  await demo.page.getByRole('button', { name: 'Join' }).click();
  await demo.page.locator('[data-screen=room]').waitFor(WAIT);
}

/**
 * Cursor-like traffic between two Node clients of this server (12-byte `unreliable` messages at
 * 60 Hz): the SDK's own one-way delay on this machine at this moment, to set the pages' against.
 */
async function nodeBaseline(): Promise<{ messages: number; p50Ms: number; p95Ms: number; p99Ms: number }> {
  const now = () => performance.timeOrigin + performance.now();
  const [a, b] = await Promise.all([Client.connect(server.url, await server.token('node-a')), Client.connect(server.url, await server.token('node-b'))]);
  try {
    const roomA = await a.joinConference('node-baseline');
    const roomB = await b.joinConference('node-baseline');
    const delays: number[] = [];
    const count = 120;
    const last = new Promise<void>((done) => {
      void roomB.makeRecvDataSession(102, (data) => {
        const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
        delays.push(now() - view.getFloat64(4));
        if (view.getUint32(0) === count - 1) done();
      });
    });
    const tx = await roomA.makeSendDataSession(102, 'unreliable');
    for (let i = 0; i < count; i++) {
      const msg = new Uint8Array(12);
      const view = new DataView(msg.buffer);
      view.setUint32(0, i);
      view.setFloat64(4, now());
      tx.send(msg);
      // The workload's pace (60 Hz, like a pointer), not a wait for anything.
      await new Promise((r) => setTimeout(r, 1000 / 60));
    }
    await last;
    delays.sort((x, y) => x - y);
    const pct = (p: number) => Number(delays[Math.min(delays.length - 1, Math.floor((p / 100) * delays.length))]!.toFixed(2));
    return { messages: delays.length, p50Ms: pct(50), p95Ms: pct(95), p99Ms: pct(99) };
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

async function shot(demo: DemoPage, file: string): Promise<void> {
  await demo.page.screenshot({ path: resolve(ARTIFACTS, file), fullPage: true });
}

const row = (demo: DemoPage, who: DemoPage) => demo.page.locator('.participant:not(.self)', { has: demo.page.locator('.name', { hasText: who.name }) });

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  server = await startServerProcess({ demo: true, maxParticipantsPerRoom: 3 });
  proxy = await startFaultProxy(server.port);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  writeFileSync(resolve(ARTIFACTS, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  await browser?.close();
  await proxy?.close();
  await server?.stop();
});

afterEach(() => {
  // No page may have logged an error, except the WebSocket failures of the connection-loss test (filtered there).
  for (const p of pages) expect(p.errors.join("\n"), `console errors in ${p.name}'s page`).toBe("");
});

describe('three people in a room', () => {
  let ann: DemoPage;
  let ben: DemoPage;
  let cleo: DemoPage;

  it('join by name and see each other: connection state, capabilities and metadata', async () => {
    ann = await openPage('Ann');
    const interactive = await ann.page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
      return { appReadyMs: performance.getEntriesByName('demo-interactive')[0]!.startTime, domContentLoadedMs: nav.domContentLoadedEventEnd, loadMs: nav.loadEventEnd };
    });
    metrics.timeToInteractive = interactive;
    console.log(`time to interactive (join form ready): ${interactive.appReadyMs.toFixed(0)} ms after navigation start`);
    await shot(ann, '1-join.png');
    const joinStart = Date.now();
    await join(ann);
    metrics.joinMs = Date.now() - joinStart;
    ben = await openPage('Ben');
    await join(ben);
    cleo = await openPage('Cleo');
    await join(cleo);

    for (const [me, others] of [[ann, [ben, cleo]], [ben, [ann, cleo]], [cleo, [ann, ben]]] as const) {
      await expect.poll(() => me.page.locator('.people .count').textContent(), WAIT).toBe('(3)');
      for (const other of others) {
        await expect(row(me, other).locator('.state').textContent()).resolves.toBe('connected');
        await expect(row(me, other).locator('.meta').textContent()).resolves.toMatch(/^demo-\S+ · protocol \d+ · data sessions$/);
      }
    }
    // The production key keeps demo users to demo-* rooms: the room name the user typed already is one.
    await expect(ann.page.locator('.room-name').textContent()).resolves.toBe(ROOM);

    // Metadata: Ben sets a status, the others see it.
    await ben.page.fill('#status', 'reviewing the PR');
    await ben.page.press('#status', 'Enter');
    await expect.poll(() => row(ann, ben).locator('.status').textContent(), WAIT).toBe('reviewing the PR');
    await expect.poll(() => row(cleo, ben).locator('.status').textContent(), WAIT).toBe('reviewing the PR');
    await shot(ann, '2-room.png');
  });

  it('chat goes both ways, with delivery shown per message', async () => {
    await ann.page.fill('#chat-input', 'hello from Ann');
    await ann.page.press('#chat-input', 'Enter');
    for (const p of [ben, cleo]) await p.page.locator('.msg:not(.mine) .text', { hasText: 'hello from Ann' }).waitFor(WAIT);
    const annStatus = ann.page.locator('.msg.mine', { hasText: 'hello from Ann' }).locator('.delivery');
    await expect.poll(() => annStatus.getAttribute('data-state'), WAIT).toBe('delivered');
    await expect(annStatus.textContent()).resolves.toBe('delivered to all 2');
    await expect(annStatus.getAttribute('title')).resolves.toMatch(/^confirmed by (Ben|Cleo) \(\d+\.\d ms\), (Ben|Cleo) \(\d+\.\d ms\)$/);

    await ben.page.fill('#chat-input', 'hi Ann, Ben here');
    await ben.page.getByRole('button', { name: 'Send', exact: true }).click();
    await ann.page.locator('.msg:not(.mine)', { hasText: 'hi Ann, Ben here' }).locator('.author', { hasText: 'Ben' }).waitFor(WAIT);
    await expect.poll(() => ben.page.locator('.msg.mine', { hasText: 'hi Ann, Ben here' }).locator('.delivery').getAttribute('data-state'), WAIT).toBe('delivered');
    // The live panel counted the chat both ways.
    await expect.poll(() => ann.page.locator('tr[data-session=chat][data-direction=in] td:nth-of-type(5)').textContent(), WAIT).not.toBe('0 B');
    await shot(ben, '3-chat.png');
  });

  it('cursor moves in one page appear in the others, at display rate, over the transport shown', async () => {
    // WebRTC once the page's data channel is open (docs/webrtc.md), the WebSocket until then or without it.
    await expect(ann.page.locator('.cursors .badge').textContent()).resolves.toMatch(/^unreliable · (WebSocket|WebRTC)$/);
    const board = (await ann.page.locator('.board').boundingBox())!;
    // Ben's page notes when each new position of Ann's cursor reaches its DOM; Ann's page notes when each pointer event happened.
    await ben.page.evaluate(() => {
      window.observed = { progress: [], cursor: [] };
      const seen = window.observed.cursor;
      new MutationObserver((records) => {
        const at = performance.timeOrigin + performance.now();
        for (const r of records) {
          const el = r.target as HTMLElement;
          if (el.classList.contains('cursor') && el.textContent === 'Ann') seen.push({ x: el.dataset.x ?? '', at });
        }
      }).observe(document.querySelector('.board')!, { subtree: true, attributes: true, attributeFilter: ['data-x'] });
    });
    await ann.page.evaluate(() => {
      window.observed = { progress: [], cursor: [] };
      const board = document.querySelector<HTMLElement>('.board')!;
      board.addEventListener('pointermove', (e) => {
        const r = board.getBoundingClientRect();
        window.observed!.cursor.push({ x: ((e.clientX - r.left) / r.width).toFixed(3), at: performance.timeOrigin + e.timeStamp });
      });
    });
    // 120 moves across the board, each to a distinct x.
    const steps = 120;
    const xAt = (i: number) => board.width * (0.1 + (0.6 * i) / steps);
    for (let i = 0; i < steps; i++) await ann.page.mouse.move(board.x + xAt(i), board.y + board.height / 2 + Math.sin(i / 8) * 60);
    const last = (xAt(steps - 1) / board.width).toFixed(3);
    const annCursorIn = (p: DemoPage) => p.page.locator('.cursor:not(.mine)', { hasText: 'Ann' });
    await expect.poll(() => annCursorIn(ben).getAttribute('data-x'), WAIT).toBe(last);
    await expect.poll(() => annCursorIn(cleo).getAttribute('data-x'), WAIT).toBe(last);
    await expect(annCursorIn(ben).isVisible()).resolves.toBe(true);
    // Cleo's cursor shows up too, with her name.
    const cleoBoard = (await cleo.page.locator('.board').boundingBox())!;
    for (let i = 0; i <= 10; i++) await cleo.page.mouse.move(cleoBoard.x + cleoBoard.width * (0.2 + i / 100), cleoBoard.y + cleoBoard.height * 0.3);
    await expect.poll(() => ben.page.locator('.cursor:not(.mine)', { hasText: 'Cleo' }).getAttribute('data-x'), WAIT).toBe('0.300');

    const sent = await ann.page.evaluate(() => window.observed!.cursor);
    const shown = await ben.page.evaluate(() => window.observed!.cursor);
    const sentAt = new Map<string, number>();
    for (const s of sent) if (!sentAt.has(s.x)) sentAt.set(s.x, s.at);
    const delays = shown.flatMap((s) => (sentAt.has(s.x) ? [s.at - sentAt.get(s.x)!] : [])).sort((a, b) => a - b);
    const pct = (p: number) => delays[Math.min(delays.length - 1, Math.floor((p / 100) * delays.length))]!;
    metrics.cursor = { moves: steps, shown: shown.length, matched: delays.length, p50Ms: pct(50), p95Ms: pct(95), p99Ms: pct(99), maxMs: delays.at(-1) };
    console.log(`cursor latency, pointer event in one page → position in the other page's DOM: ${JSON.stringify(metrics.cursor)}`);
    // Positions are coalesced to one per frame, so some moves are superseded; most still show.
    expect(delays.length).toBeGreaterThan(steps / 4);
    expect(pct(50)).toBeLessThan(250);
    // Ben's live panel shows the delay of the positions on the wire (send → receive callback).
    const wire = ben.page.locator('.delay-stats');
    await expect.poll(() => wire.textContent(), WAIT).toMatch(/^cursor delay \(send → arrival, last \d+\): p50 \d+\.\d ms · p95 \d+\.\d ms · p99 \d+\.\d ms$/);
    const [p50, p95, p99] = [...(await wire.textContent())!.matchAll(/p\d+ (\d+\.\d) ms/g)].map((m) => Number(m[1]));
    metrics.cursorWire = { p50Ms: p50, p95Ms: p95, p99Ms: p99 };
    console.log(`cursor latency on the wire, send() → receive callback: ${JSON.stringify(metrics.cursorWire)}`);
    metrics.nodeBaseline = await nodeBaseline();
    console.log(`the same 12-byte unreliable messages at 60 Hz between two Node clients, same server, same moment: ${JSON.stringify(metrics.nodeBaseline)}`);
    await shot(ben, '4-cursors.png');
  });

  it('a 20 MiB file dropped in one page arrives SHA-256 verified in the others, with progress on both sides', async () => {
    for (const p of [ann, ben, cleo]) {
      await p.page.evaluate(() => {
        window.observed = { progress: [], cursor: [] };
        const list = document.querySelector('.transfers')!;
        new MutationObserver((records) => {
          for (const r of records) {
            const bytes = (r.target as HTMLElement).dataset.bytes;
            if (r.attributeName === 'data-bytes' && bytes) window.observed!.progress.push(Number(bytes));
          }
        }).observe(list, { subtree: true, attributes: true, attributeFilter: ['data-bytes'] });
      });
    }
    const started = Date.now();
    await ann.page.evaluate((size) => {
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff;
      const data = new DataTransfer();
      data.items.add(new File([bytes], 'pattern-20MiB.bin', { type: 'application/octet-stream' }));
      const zone = document.querySelector('.dropzone')!;
      zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
    }, FILE_BYTES);
    for (const p of [ben, cleo]) {
      const incoming = p.page.locator('.transfer[data-direction=in]', { hasText: 'pattern-20MiB.bin' });
      await expect.poll(() => incoming.getAttribute('data-state'), { timeout: 25_000 }).toBe('verified');
      await expect(incoming.locator('.transfer-status').textContent()).resolves.toBe('received 20.0 MiB · SHA-256 verified');
      await expect(incoming.locator('.sha256').textContent()).resolves.toBe(`SHA-256 ${patternSha256}`);
      await expect(incoming.locator('a.download').getAttribute('download')).resolves.toBe('pattern-20MiB.bin');
      await expect(incoming.locator('a.download').getAttribute('href')).resolves.toMatch(/^blob:/);
    }
    metrics.file = { bytes: FILE_BYTES, receivers: 2, seconds: (Date.now() - started) / 1000 };
    const outgoing = ann.page.locator('.transfer[data-direction=out]', { hasText: 'pattern-20MiB.bin' });
    await expect.poll(() => outgoing.locator('.receipt.ok').count(), WAIT).toBe(2);
    await expect(outgoing.locator('.transfer-status').textContent()).resolves.toBe('sent · verified by receivers');
    await expect.poll(() => outgoing.locator('.sha256').textContent(), WAIT).toBe(`SHA-256 ${patternSha256}`);
    // Progress was drawn on both sides: several intermediate values below the total.
    for (const p of [ann, ben, cleo]) {
      const progress = await p.page.evaluate(() => window.observed!.progress);
      expect(progress.filter((b) => b > 0 && b < FILE_BYTES).length, `progress updates in ${p.name}'s page`).toBeGreaterThan(2);
    }
    await shot(ben, '5-file.png');
  });

  it('a burst shows backpressure in the live panel: queueTooLong triggered, then cleared, and every byte arrives', async () => {
    await ann.page.getByRole('button', { name: 'Send a burst (8.0 MiB)' }).click();
    const events = ann.page.locator('.live .events li');
    const tooLong = events.filter({ hasText: 'burst: queue too long (slow down)' });
    await tooLong.first().waitFor(WAIT);
    await events.filter({ hasText: 'burst: queue drained below the low-water mark' }).first().waitFor({ timeout: 25_000 });
    await expect(ann.page.locator('.burst-status').textContent()).resolves.toMatch(/^8\.0 MiB drained in \d+\.\d s \(.+\/s\)$/);
    for (const p of [ben, cleo]) {
      await expect.poll(() => p.page.locator('tr[data-session=burst][data-direction=in] td:nth-of-type(5)').textContent(), { timeout: 25_000 }).toBe('8.0 MiB');
    }
    // The signal ends cleared, and the table counts every trigger the list shows: a backlog report
    // that arrives after the local queue has drained can trigger it again (docs/client-sdk.md).
    await expect.poll(() => events.first().textContent(), WAIT).toContain('burst: queue drained below the low-water mark');
    const triggers = Number(await ann.page.locator('tr[data-session=burst][data-direction=out] td:nth-of-type(8)').textContent());
    expect(triggers).toBeGreaterThanOrEqual(1);
    expect(triggers).toBe(await tooLong.count());
    await shot(ann, '5b-burst.png');
  });

  it('a 1:1 call between two pages: incoming dialog, accept, a nudge inside the call, hang up, and why it ended', async () => {
    await row(ann, ben).getByRole('button', { name: 'Call Ben' }).click();
    const dialog = ben.page.locator('dialog.incoming');
    await dialog.waitFor(WAIT);
    await expect(dialog.locator('h2').textContent()).resolves.toBe('Ann is calling');
    await shot(ben, '6-incoming-call.png');
    await dialog.getByRole('button', { name: 'Accept' }).click();
    for (const [p, peer] of [[ann, 'Ben'], [ben, 'Ann']] as const) {
      await expect.poll(() => p.page.locator('.call-panel').getAttribute('data-state'), WAIT).toBe('connected');
      await expect(p.page.locator('.call-status').textContent()).resolves.toMatch(new RegExp(`^In a call with ${peer} \\d+:\\d\\d$`));
    }
    // Cleo cannot call either of them while they are busy here, and sees the call buttons disabled.
    await expect.poll(() => row(ann, cleo).getByRole('button', { name: 'Call Cleo' }).isDisabled(), WAIT).toBe(true);
    await ann.page.getByRole('button', { name: 'Nudge' }).click();
    await expect.poll(() => ben.page.locator('.nudges').textContent(), WAIT).toBe('Ann nudged you 👋 (1)');
    await shot(ann, '7-in-call.png');
    await ben.page.getByRole('button', { name: 'Hang up' }).click();
    for (const [p, peer] of [[ann, 'Ben'], [ben, 'Ann']] as const) {
      await expect.poll(() => p.page.locator('.call-panel').getAttribute('data-reason'), WAIT).toBe('normal');
      await expect(p.page.locator('.call-status').textContent()).resolves.toMatch(new RegExp(`^Call with ${peer} ended: hung up · \\d+:\\d\\d$`));
    }

    // Declined from the keyboard: Escape on the incoming-call dialog.
    await row(cleo, ann).getByRole('button', { name: 'Call Ann' }).click();
    await ann.page.locator('dialog.incoming').waitFor(WAIT);
    await ann.page.keyboard.press('Escape');
    await expect.poll(() => cleo.page.locator('.call-panel').getAttribute('data-reason'), WAIT).toBe('declined');
    await expect(cleo.page.locator('.call-status').textContent()).resolves.toMatch(/^Call with Ann ended: declined · 0:00$/);
    await expect(ann.page.locator('.call-status').textContent()).resolves.toBe("You declined Cleo's call");
    await shot(cleo, '8-call-ended.png');
  });

  it('a fourth person is told clearly that the room is full', async () => {
    const dan = await openPage('Dan');
    await dan.page.fill('#name', 'Dan');
    await dan.page.fill('#room', ROOM);
    await dan.page.getByRole('button', { name: 'Join' }).click();
    const error = dan.page.locator('.join .error');
    await error.waitFor(WAIT);
    await expect(error.getAttribute('data-code')).resolves.toBe('room-full');
    await expect(error.locator('strong').textContent()).resolves.toBe('The room is full');
    await shot(dan, '9-room-full.png');
    // The form is still there to try another room.
    await expect(dan.page.locator('#room').inputValue()).resolves.toBe(ROOM);
  });
});

describe('error states and recovery', () => {
  it('a refused token is shown with its code', async () => {
    const eve = await openPage('Eve');
    await eve.page.fill('#name', 'Eve');
    await eve.page.locator('details summary').click();
    await eve.page.fill('#token', 'not-a-token');
    await eve.page.getByRole('button', { name: 'Join' }).click();
    const error = eve.page.locator('.join .error');
    await error.waitFor(WAIT);
    await expect(error.getAttribute('data-code')).resolves.toBe('token-malformed');
    await expect(error.locator('strong').textContent()).resolves.toBe('The server refused the access token: it is not a token');
    await shot(eve, '10-token-refused.png');
  });

  it('a room name outside demo-* is moved into it on a production key, and the page says so', async () => {
    const fay = await openPage('Fay');
    await join(fay, 'lobby');
    await expect(fay.page.locator('.room-name').textContent()).resolves.toBe('demo-lobby');
    await expect(fay.page.locator('#banner').textContent()).resolves.toContain('Demo tokens on this server join rooms named demo-*');
    await fay.page.getByRole('button', { name: 'Leave' }).click();
    await fay.page.locator('[data-screen=join]').waitFor(WAIT);
  });

  it('a lost connection: the page shows reconnecting, others see it, messages wait, and it resumes', async () => {
    const gus = await openPage('Gus', { base: `http://127.0.0.1:${proxy.port}` });
    await join(gus, 'demo-network');
    const hal = await openPage('Hal');
    await join(hal, 'demo-network');
    await expect.poll(() => row(gus, hal).locator('.state').textContent(), WAIT).toBe('connected');

    proxy.refuseNew(true);
    proxy.cutAll();
    await expect.poll(() => gus.page.locator('#connection').getAttribute('data-state'), WAIT).toBe('reconnecting');
    await expect(gus.page.locator('#banner').getAttribute('data-kind')).resolves.toBe('warn');
    await expect.poll(() => row(hal, gus).locator('.state').textContent(), WAIT).toBe('reconnecting');
    await gus.page.fill('#chat-input', 'sent while offline');
    await gus.page.press('#chat-input', 'Enter');
    const status = gus.page.locator('.msg.mine', { hasText: 'sent while offline' }).locator('.delivery');
    await expect(status.textContent()).resolves.toBe('queued until reconnected');
    await shot(gus, '11-reconnecting.png');
    await shot(hal, '12-peer-reconnecting.png');

    proxy.refuseNew(false);
    await expect.poll(() => gus.page.locator('#connection').getAttribute('data-state'), WAIT).toBe('connected');
    await expect(gus.page.locator('#banner').textContent()).resolves.toContain('Reconnected: the session resumed');
    await expect.poll(() => row(hal, gus).locator('.state').textContent(), WAIT).toBe('connected');
    await hal.page.locator('.msg:not(.mine) .text', { hasText: 'sent while offline' }).waitFor(WAIT);
    await expect.poll(() => status.getAttribute('data-state'), WAIT).toBe('delivered');
    await shot(gus, '13-resumed.png');
    // Chromium logs the refused WebSocket attempts; nothing else.
    const unexpected = gus.errors.filter((e) => !/^WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/' failed/.test(e));
    gus.errors.length = 0;
    expect(unexpected).toEqual([]);
  });

  it('the server restarts: the pages reconnect as new participants and rejoin their room', async () => {
    const own = await startServerProcess({ demo: true });
    let restarted: ServerProcess | undefined;
    try {
      const jo = await openPage('Jo', { base: own.httpUrl });
      await join(jo, 'demo-restart');
      const lu = await openPage('Lu', { base: own.httpUrl });
      await join(lu, 'demo-restart');
      const joUser = await jo.page.locator('.participant.self .meta').textContent();
      own.proc.kill('SIGKILL');
      await expect.poll(() => jo.page.locator('#connection').getAttribute('data-state'), WAIT).toBe('reconnecting');
      restarted = await startServerProcess({ demo: true, port: own.port });
      for (const p of [jo, lu]) {
        await expect.poll(() => p.page.locator('#banner').getAttribute('data-code'), WAIT).toBe('resume-not-found');
        await expect(p.page.locator('#banner').textContent()).resolves.toContain('the server could not resume this session');
        await expect.poll(() => p.page.locator('#connection').getAttribute('data-state'), WAIT).toBe('connected');
      }
      // Both are back in the room on the new server, Jo as the same demo user (its token was renewed).
      await expect(jo.page.locator('.participant.self .meta').textContent()).resolves.toBe(joUser);
      await expect.poll(() => row(lu, jo).locator('.state').textContent(), WAIT).toBe('connected');
      await lu.page.fill('#chat-input', 'back after the restart');
      await lu.page.press('#chat-input', 'Enter');
      await jo.page.locator('.msg:not(.mine) .text', { hasText: 'back after the restart' }).waitFor(WAIT);
      await shot(jo, '15-server-restarted.png');
      for (const p of [jo, lu]) {
        const unexpected = p.errors.filter((e) => !/^WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/' failed/.test(e));
        p.errors.length = 0;
        expect(unexpected).toEqual([]);
      }
    } finally {
      await restarted?.stop();
      await own.stop();
    }
  });

  it('the server shuts down: the page says so and offers to join again', async () => {
    const own = await startServerProcess({ demo: true, drainTimeoutMs: 0 });
    try {
      const kim = await openPage('Kim', { base: own.httpUrl });
      await join(kim, 'demo-shutdown');
      await own.stop();
      const error = kim.page.locator('.join .error');
      await error.waitFor(WAIT);
      await expect(error.getAttribute('data-code')).resolves.toBe('server-shutdown');
      await expect(error.locator('strong').textContent()).resolves.toBe('The server shut down');
      await expect(kim.page.locator('#connection').getAttribute('data-state')).resolves.toBe('disconnected');
      await shot(kim, '16-server-shut-down.png');
    } finally {
      await own.stop();
    }
  });

  it('works at phone width with the keyboard alone', async () => {
    const ivy = await openPage('Ivy', { width: 390, height: 844 });
    const { page } = ivy;
    // The name field has focus on load; Tab moves through the form.
    await page.keyboard.type('Ivy');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('demo-phone');
    await page.keyboard.press('Enter');
    await page.locator('[data-screen=room]').waitFor(WAIT);
    await page.locator('#chat-input').focus();
    await page.keyboard.type('typed on a phone');
    await page.keyboard.press('Enter');
    await expect(page.locator('.msg.mine .text').textContent()).resolves.toBe('typed on a phone');
    // Nothing is wider than the screen.
    await expect(page.evaluate(() => document.documentElement.scrollWidth)).resolves.toBeLessThanOrEqual(390);
    // The cursor board answers the arrow keys.
    await page.locator('.board').focus();
    await page.keyboard.press('ArrowRight');
    await expect.poll(() => page.locator('.cursor.mine').getAttribute('data-x'), WAIT).toBe('0.520');
    await shot(ivy, '14-phone.png');
  });
});
