/**
 * Sections of bench/RESULTS.md written by the stand-alone benchmark scripts (webrtc.mjs,
 * large-room.mjs, cluster.mjs), between markers; a run of run.mjs keeps them as they are.
 */

/** The text from `start` to `end` (markers included) in `markdown`, or ''. */
export function keptBetween(markdown, start, end) {
  const i = markdown.indexOf(start);
  const j = markdown.indexOf(end, i);
  return i >= 0 && j > i ? markdown.slice(i, j + end.length) : '';
}

/** Replaces the section between `start` and `end` in `markdown` with `body`, or appends it. */
export function withSection(markdown, start, end, body) {
  const block = `${start}\n${body}\n${end}`;
  const i = markdown.indexOf(start);
  const j = markdown.indexOf(end, i);
  return i >= 0 && j > i ? markdown.slice(0, i) + block + markdown.slice(j + end.length) : `${markdown.trimEnd()}\n\n${block}\n`;
}

export const LARGE_ROOM_START = '<!-- large-room: written by `node bench/large-room.mjs`; other runs keep this section -->';
export const LARGE_ROOM_END = '<!-- large-room: end -->';

export const CLUSTER_START = '<!-- cluster: written by node bench/cluster.mjs; other runs keep this section -->';
export const CLUSTER_END = '<!-- cluster: end -->';

/** Issue 17's before/after runs (light-load fan-out latency, 100 B flood memory, join), written by hand from their JSON. */
export const ISSUE17_START = '<!-- issue-17: before/after runs, see PROFILE.md; other runs keep this section -->';
export const ISSUE17_END = '<!-- issue-17: end -->';
