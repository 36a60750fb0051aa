/** The README's example of two clients, as written there, and the output it says it prints. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** Address the README's example connects to. */
export const README_SERVER_URL = 'ws://127.0.0.1:7800';

/** The first `js` block after "## Two clients exchanging data" and the `text` block after it. */
export function readmeExample(): { code: string; output: string } {
  const readme = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Two clients exchanging data'));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  const output = /```js\n[\s\S]*?```[\s\S]*?```text\n([\s\S]*?)```/.exec(section)?.[1];
  if (!code || !output) throw new Error('README.md: no js example followed by its text output under "## Two clients exchanging data"');
  return { code, output };
}

/** The example's code pointed at `url` instead of the dev server's default address. */
export function readmeExampleFor(url: string): string {
  const { code } = readmeExample();
  if (!code.includes(README_SERVER_URL)) throw new Error(`README.md: the example no longer connects to ${README_SERVER_URL}`);
  return code.replaceAll(README_SERVER_URL, url);
}
