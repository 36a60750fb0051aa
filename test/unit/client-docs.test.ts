/** The client SDK's options and the data-stream failure reasons are documented. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CLIENT_OPTIONS, StreamFailReason } from '@backchannel/client';

const doc = (name: string) => readFileSync(resolve(import.meta.dirname, '../../docs', name), 'utf8');

describe('client documentation', () => {
  it('docs/configuration.md lists every client option with its default', () => {
    const text = doc('configuration.md');
    const section = text.slice(text.indexOf('## Client SDK options'));
    const table = section.slice(0, section.indexOf('\n## ', 1));
    const missing = Object.keys(DEFAULT_CLIENT_OPTIONS).filter((key) => !table.includes(`\`${key}\``));
    expect(missing).toEqual([]);
  });

  it('docs/errors.md lists every data-stream failure reason', () => {
    const text = doc('errors.md');
    const section = text.slice(text.indexOf('### Data streams, per destination'));
    const missing = Object.values(StreamFailReason).filter((code) => !section.includes(`\`${code}\``));
    expect(missing).toEqual([]);
  });
});
