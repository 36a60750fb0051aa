/**
 * A real Chromium (Debian `chromium`, driven by playwright-core) with a page that has loaded the
 * client SDK's browser bundle, served from 127.0.0.1.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type * as BackchannelSdk from '@backchannel/client';

export const CHROMIUM = '/usr/bin/chromium';
const BUNDLE = resolve(import.meta.dirname, '../../packages/client/dist/backchannel.browser.js');
const PAGE = resolve(import.meta.dirname, '../browser/fixtures/index.html');
/** Flags for headless Chromium in this environment. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

declare global {
  interface Window {
    Backchannel?: typeof BackchannelSdk;
    backchannelLoadError?: string;
  }
}

export interface SdkPage {
  browser: Browser;
  page: Page;
  /** Console errors and page errors seen so far. */
  errors: string[];
  close(): Promise<void>;
}

/**
 * Launches Chromium and opens a page with `window.Backchannel` loaded; throws a clear error if it
 * cannot. `ignoreHTTPSErrors` lets the page reach a server whose certificate Chromium does not trust;
 * `args` are more Chromium flags.
 */
export async function openSdkPage(options: { ignoreHTTPSErrors?: boolean; args?: string[] } = {}): Promise<SdkPage> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: the browser tests need the Debian "chromium" package (apt-get install -y chromium).`);
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run build first.`);
  const web = createServer((req, res) => {
    if (req.url === '/backchannel.browser.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(BUNDLE));
    else if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(readFileSync(PAGE));
    else if (req.url === '/favicon.ico') res.writeHead(204).end();
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...(options.args ?? [])] });
  const page = await browser.newPage({ ignoreHTTPSErrors: options.ignoreHTTPSErrors ?? false });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
  await page.goto(`http://127.0.0.1:${(web.address() as AddressInfo).port}/`);
  await page.waitForFunction(() => window.Backchannel !== undefined || window.backchannelLoadError !== undefined);
  const loadError = await page.evaluate(() => window.backchannelLoadError);
  if (loadError) throw new Error(`the page could not load the SDK bundle: ${loadError}`);
  return {
    browser,
    page,
    errors,
    close: async () => {
      await browser.close();
      web.closeAllConnections();
      await new Promise((r) => web.close(r));
    },
  };
}
