/**
 * Markers around the WebRTC section of bench/RESULTS.md, written by `node bench/webrtc.mjs`; a run
 * of run.mjs keeps the section as it is.
 */
import { keptBetween } from './kept-sections.mjs';

export const WEBRTC_START = '<!-- webrtc: written by `node bench/webrtc.mjs`; other runs keep this section -->';
export const WEBRTC_END = '<!-- webrtc: end -->';

/** The WebRTC section of a RESULTS.md text (markers included), or ''. */
export const keptWebRtc = (markdown) => keptBetween(markdown, WEBRTC_START, WEBRTC_END);
