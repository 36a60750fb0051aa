/**
 * The datagram seam: a second path under a {@link Session}, beside its frame socket, that carries
 * `unreliable` data frames as datagrams (unordered, never retransmitted). The WebRTC data channel
 * is its one implementation (`webrtc.ts`); the session prefers it for droppable frames while open.
 */

/** An open datagram path to one client. */
export interface DatagramPath {
  /**
   * Sends one encoded data frame (fragmented if it does not fit one datagram); false if it was
   * dropped instead (the path's buffer is full, or it closed).
   */
  send(wire: Uint8Array): boolean;
}
