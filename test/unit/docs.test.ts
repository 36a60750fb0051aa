/** The documentation tables must list every error code and every server setting. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '@backchannel/protocol';
import { DEFAULT_CONFIG } from '@backchannel/server';

const doc = (name: string) => readFileSync(resolve(import.meta.dirname, '../../docs', name), 'utf8');

describe('documentation', () => {
  it('docs/errors.md lists every error code', () => {
    const text = doc('errors.md');
    const missing = Object.values(ErrorCode).filter((code) => !text.includes(`| \`${code}\` |`));
    expect(missing).toEqual([]);
  });

  it('docs/configuration.md lists every server setting', () => {
    const text = doc('configuration.md');
    const missing = Object.keys(DEFAULT_CONFIG).filter((key) => !text.includes(`| \`${key}\` |`));
    expect(missing).toEqual([]);
  });
});
