/**
 * Markers around the WebRTC section of bench/RESULTS.md, written by `node bench/webrtc.mjs`; a run
 * of run.mjs keeps the section as it is.
 */
export const WEBRTC_START = '<!-- webrtc: written by `node bench/webrtc.mjs`; other runs keep this section -->';
export const WEBRTC_END = '<!-- webrtc: end -->';

/** The WebRTC section of a RESULTS.md text (markers included), or ''. */
export function keptWebRtc(markdown) {
  const start = markdown.indexOf(WEBRTC_START);
  const end = markdown.indexOf(WEBRTC_END, start);
  return start >= 0 && end > start ? markdown.slice(start, end + WEBRTC_END.length) : '';
}
