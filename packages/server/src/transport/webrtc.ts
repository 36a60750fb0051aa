/**
 * The server end of the WebRTC datagram path (docs/webrtc.md, SPEC §7): one peer connection per
 * client, negotiated over its session (`rtc.offer` / `rtc.candidate`) when the client offers it —
 * the SDK does on its first `unreliable` session, so clients that never use one cost nothing — with
 * one pre-negotiated data channel (id 0) that is unordered and never retransmits. While it is open the
 * client's {@link Session} sends `unreliable` frames over it and takes the client's `unreliable`
 * frames from it; everything else (signalling, reliable data, resume) stays on the WebSocket, and
 * the core never knows which path a frame took.
 *
 * Built on `node-datachannel` (libdatachannel), an optional dependency loaded at start; without it
 * the server offers no WebRTC and every client stays on the WebSocket. Guardrails of that library
 * (see issue 13): the MTU stays at 1 280 bytes and no datagram exceeds one packet; message handlers
 * are attached in the same turn the channel is created and every message is read at once; its
 * inbound queue has no bound, so a client that sends more than the data limits allow over a whole
 * second loses its peer connection (a WebSocket client would be paused: datagrams cannot be).
 */
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import {
  BackchannelError,
  DATAGRAM_BYTES,
  ErrorCode,
  Reassembler,
  isFragment,
  toDatagrams,
  type WebRtcGrant,
} from '@backchannel/protocol';
import type { ServerConfig } from '../config.js';
import type { Session } from './session.js';
import type { DatagramPath } from './datagram-path.js';

type Ndc = typeof import('node-datachannel');
type PeerConnection = import('node-datachannel').PeerConnection;
type DataChannel = import('node-datachannel').DataChannel;

/** Label of the one data channel (negotiated out of band, id 0, on both sides). */
export const DATAGRAM_CHANNEL_LABEL = 'backchannel-unreliable';
/** Path MTU the SCTP association assumes (IPv6's minimum; issue 13 keeps it at most 4 KiB). */
const MTU = 1_280;
/** Bytes waiting in a channel's send buffer beyond which further datagrams are dropped (counted). */
const SEND_BUFFER_DROP_BYTES = 256 * 1024;
/** Longest wait for the server's own candidates before the answer is sent without the rest, ms. */
const GATHER_WAIT_MS = 1_000;
/** Offers one client may make per minute: each makes a peer connection (threads, a UDP port). */
export const MAX_OFFERS_PER_MINUTE = 10;

let loaded: { ndc: Ndc | undefined; error: string } | undefined;

/** Loads `node-datachannel` once; `undefined` (with the reason logged by the caller) if it cannot be. */
export function loadNodeDatachannel(): { ndc: Ndc | undefined; error: string } {
  if (!loaded) {
    try {
      loaded = { ndc: createRequire(import.meta.url)('node-datachannel') as Ndc, error: '' };
    } catch (error) {
      loaded = { ndc: undefined, error: (error as Error)?.message ?? String(error) };
    }
  }
  return loaded;
}

/** Counters of the WebRTC path, for metrics and tests. */
export interface WebRtcCounters {
  /** Offers answered. */
  offers: number;
  /** Data channels that opened. */
  opened: number;
  /** Peer connections closed before their channel opened within the negotiation time, or failed later. */
  failed: number;
  /** Offers or candidates refused as malformed. */
  refused: number;
  datagramsIn: number;
  datagramsOut: number;
  /** Datagrams not sent because the channel's buffer was full, or not taken while the sender was over its limits. */
  datagramsDropped: number;
  /** Fragmented messages dropped whole because a fragment never came. */
  messagesIncomplete: number;
  /** Time from offer to open channel, ms, of the most recent 1 000 (for the negotiation percentiles). */
  negotiationMs: number[];
}

/** What the gateway needs from the server. */
export interface WebRtcContext {
  config: Readonly<ServerConfig>;
  log: Logger;
}

/** One client's peer connection and its channel. */
class RtcPeer implements DatagramPath {
  readonly pc: PeerConnection;
  dc: DataChannel | undefined;
  open = false;
  closed = false;
  readonly startedAt = performance.now();
  timer: ReturnType<typeof setTimeout> | undefined;
  readonly reassembler = new Reassembler();
  #nextMessage = 0;
  /** Inbound bytes this second and when it started (the flood bound). */
  #windowBytes = 0;
  #windowFrames = 0;
  #windowStart = 0;

  constructor(
    readonly gateway: WebRtcGateway,
    readonly session: Session,
    pc: PeerConnection,
  ) {
    this.pc = pc;
  }

  send(wire: Uint8Array): boolean {
    const dc = this.dc;
    const c = this.gateway.counters;
    if (!this.open || !dc) return false;
    if (dc.bufferedAmount() > SEND_BUFFER_DROP_BYTES) {
      c.datagramsDropped++;
      return false;
    }
    try {
      if (wire.byteLength <= DATAGRAM_BYTES) {
        dc.sendMessageBinary(wire);
        c.datagramsOut++;
        return true;
      }
      const id = this.#nextMessage;
      this.#nextMessage = (id + 1) >>> 0;
      for (const d of toDatagrams(wire, id)) {
        dc.sendMessageBinary(d);
        c.datagramsOut++;
      }
      return true;
    } catch {
      // The channel closed under us (its close handler follows) or the frame cannot be cut.
      c.datagramsDropped++;
      return false;
    }
  }

  /** One datagram from the client, read in the turn it arrived (the library's queue has no bound). */
  receive(msg: Buffer | ArrayBuffer | string): void {
    const c = this.gateway.counters;
    if (typeof msg === 'string') {
      this.session.receiveDatagram(new Uint8Array(0)); // reported as a malformed frame
      return;
    }
    const data = msg instanceof ArrayBuffer ? new Uint8Array(msg) : new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
    c.datagramsIn++;
    if (this.#overLimits(data.byteLength)) {
      c.datagramsDropped++;
      return;
    }
    let frame: Uint8Array | undefined = data;
    if (isFragment(data)) {
      const before = this.reassembler.dropped;
      try {
        frame = this.reassembler.push(data);
      } catch (error) {
        this.session.reportDatagramError(error);
        return;
      }
      c.messagesIncomplete += this.reassembler.dropped - before;
      if (!frame) return;
    }
    this.session.receiveDatagram(frame);
  }

  /**
   * The bound of the library's unbounded inbound queue: a client sending more than its data
   * limits allow, sustained over a second, cannot be paused like a socket, so its peer connection
   * is closed (it carries on over the WebSocket, where the limits pause it).
   */
  #overLimits(bytes: number): boolean {
    const { maxDataBitrateKbps, maxDataFramesPerSecond } = this.gateway.config;
    const now = performance.now();
    if (now - this.#windowStart >= 1_000) {
      this.#windowStart = now;
      this.#windowBytes = 0;
      this.#windowFrames = 0;
    }
    this.#windowBytes += bytes;
    this.#windowFrames++;
    const overBytes = maxDataBitrateKbps > 0 && this.#windowBytes * 8 > maxDataBitrateKbps * 1000 * 2;
    const overFrames = maxDataFramesPerSecond > 0 && this.#windowFrames > maxDataFramesPerSecond * 2;
    if (!overBytes && !overFrames) return false;
    this.gateway.fail(this, `the client sent datagrams beyond twice its data limits (${maxDataBitrateKbps} kbit/s, ${maxDataFramesPerSecond} frames/s) within a second`);
    return true;
  }
}

/** Rewrites the address of a candidate line (`candidate:… <address> <port> typ …`) to `address`. */
export function announce(candidate: string, address: string): string {
  if (!address) return candidate;
  const parts = candidate.split(' ');
  // candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> …
  if (parts.length < 8 || parts[6] !== 'typ' || parts[7] !== 'host') return candidate;
  parts[4] = address;
  return parts.join(' ');
}

const CANDIDATE = /^(a=)?candidate:[A-Za-z0-9+/]{1,32} \d{1,3} (udp|UDP|tcp|TCP) \d{1,10} [0-9A-Za-z.:%-]{1,255} \d{1,5} typ (host|srflx|prflx|relay)( [\x21-\x7e ]*)?$/;

/** Checks an SDP offer before it reaches the native parser: text lines, one data-channel section, no media. */
export function checkOffer(sdp: string): void {
  const bad = (why: string) => new BackchannelError(ErrorCode.WebRtcBadSdp, `the SDP offer ${why}`);
  if (!sdp.startsWith('v=0')) throw bad('must start with "v=0"');
  if (/[^\x20-\x7e\r\n\t]/.test(sdp)) throw bad('holds characters that SDP does not allow');
  const lines = sdp.split(/\r?\n/).filter((l) => l.length > 0);
  if (!lines.every((l) => /^[a-z]=/.test(l))) throw bad('has a line that is not "<letter>=<value>"');
  const media = lines.filter((l) => l.startsWith('m='));
  if (media.length !== 1 || !/^m=application \d+ (UDP\/DTLS\/SCTP|DTLS\/SCTP) webrtc-datachannel$/.test(media[0]!)) {
    throw bad('must have exactly one section, "m=application … webrtc-datachannel" (no audio or video)');
  }
  if (!lines.some((l) => l.startsWith('a=fingerprint:'))) throw bad('has no DTLS fingerprint');
  if (!lines.some((l) => l.startsWith('a=ice-ufrag:')) || !lines.some((l) => l.startsWith('a=ice-pwd:'))) throw bad('has no ICE credentials');
}

/**
 * Every client's peer connection. Requests come in through `offer()`, `candidate()` and `close()`;
 * the session gets its datagram path when the channel opens and loses it when it closes.
 */
export class WebRtcGateway {
  readonly config: Readonly<ServerConfig>;
  readonly #log: Logger;
  readonly #ndc: Ndc;
  readonly #peers = new Map<Session, RtcPeer>();
  /** Offers per session in the current minute. */
  readonly #offerCounts = new WeakMap<Session, { n: number; since: number }>();
  readonly counters: WebRtcCounters = { offers: 0, opened: 0, failed: 0, refused: 0, datagramsIn: 0, datagramsOut: 0, datagramsDropped: 0, messagesIncomplete: 0, negotiationMs: [] };
  #next = 0;

  private constructor(ctx: WebRtcContext, ndc: Ndc) {
    this.config = ctx.config;
    this.#log = ctx.log;
    this.#ndc = ndc;
  }

  /** The gateway, or `undefined` when WebRTC is turned off or `node-datachannel` cannot be loaded (logged). */
  static create(ctx: WebRtcContext): WebRtcGateway | undefined {
    if (!ctx.config.webrtc) return undefined;
    const { ndc, error } = loadNodeDatachannel();
    if (!ndc) {
      ctx.log.warn({ error }, 'WebRTC is unavailable (the optional package node-datachannel could not be loaded); clients stay on the WebSocket');
      return undefined;
    }
    return new WebRtcGateway(ctx, ndc);
  }

  /** What the welcome tells a client. */
  grant(): WebRtcGrant {
    return {
      iceServers: this.config.webrtcIceServers.map((s) => ({ ...s })),
      negotiationTimeoutMs: this.config.webrtcNegotiationTimeoutMs,
      datagramBytes: DATAGRAM_BYTES,
    };
  }

  /** Peer connections open or negotiating. */
  get size(): number {
    return this.#peers.size;
  }

  /** Whether `session`'s datagram path is open. */
  isOpen(session: Session): boolean {
    return this.#peers.get(session)?.open === true;
  }

  /**
   * Answers a client's offer: a new peer connection (replacing any earlier one of the session),
   * with the answer sent once the server's candidates are in it (or after {@link GATHER_WAIT_MS}).
   * Throws `webrtc-bad-sdp` for an offer it cannot use, `rate-limited` beyond
   * {@link MAX_OFFERS_PER_MINUTE} offers of one client within a minute, `webrtc-unavailable` when
   * the server already holds `webrtcMaxPeerConnections`.
   */
  async offer(session: Session, sdp: string): Promise<{ sdp: string }> {
    const now = Date.now();
    let count = this.#offerCounts.get(session);
    if (!count || now - count.since >= 60_000) this.#offerCounts.set(session, (count = { n: 0, since: now }));
    if (++count.n > MAX_OFFERS_PER_MINUTE) {
      throw new BackchannelError(ErrorCode.RateLimited, `more than ${MAX_OFFERS_PER_MINUTE} WebRTC offers within a minute`);
    }
    try {
      checkOffer(sdp);
    } catch (error) {
      this.counters.refused++;
      throw error;
    }
    this.close(session);
    const { config } = this;
    if (this.#peers.size >= config.webrtcMaxPeerConnections) {
      this.counters.failed++;
      throw new BackchannelError(ErrorCode.WebRtcUnavailable, `the server holds its most peer connections (${config.webrtcMaxPeerConnections}); unreliable data stays on the WebSocket`, {
        details: { limit: config.webrtcMaxPeerConnections },
      });
    }
    const bindAddress = config.host === '0.0.0.0' || config.host === '::' ? undefined : config.host;
    let pc: PeerConnection;
    try {
      pc = new this.#ndc.PeerConnection(`bc-${++this.#next}`, {
        iceServers: [],
        mtu: MTU,
        maxMessageSize: 64 * 1024,
        enableIceTcp: false,
        ...(bindAddress ? { bindAddress } : {}),
        ...(config.webrtcPortMin > 0 ? { portRangeBegin: config.webrtcPortMin, portRangeEnd: config.webrtcPortMax } : {}),
      });
    } catch (error) {
      this.counters.failed++;
      throw new BackchannelError(ErrorCode.WebRtcFailed, `no peer connection could be made: ${(error as Error)?.message ?? String(error)}`);
    }
    const peer = new RtcPeer(this, session, pc);
    this.#peers.set(session, peer);
    this.counters.offers++;
    const gathered = new Promise<void>((resolve) => {
      pc.onGatheringStateChange((state) => {
        if (state === 'complete') resolve();
      });
      setTimeout(resolve, GATHER_WAIT_MS).unref();
    });
    let answered = false;
    pc.onLocalCandidate((candidate, mid) => {
      // Candidates found after the answer went out follow it as events.
      if (answered && !peer.closed) session.sendControl({ t: 'rtc.candidate', candidate: announce(candidate.replace(/^a=/, ''), config.webrtcAnnouncedAddress), mid });
    });
    pc.onStateChange((state) => {
      if (state === 'failed' || state === 'closed') this.fail(peer, `the peer connection ${state}`);
    });
    // A client may not open channels of its own: only the negotiated one is used.
    pc.onDataChannel((dc) => {
      dc.onMessage(() => {});
      dc.close();
    });
    try {
      pc.setRemoteDescription(sdp, 'offer');
    } catch (error) {
      this.counters.refused++;
      this.#drop(peer);
      throw new BackchannelError(ErrorCode.WebRtcBadSdp, `the SDP offer was refused: ${(error as Error)?.message ?? String(error)}`);
    }
    // Created after the answer exists, so it needs no renegotiation; handlers attached at once.
    const dc = pc.createDataChannel(DATAGRAM_CHANNEL_LABEL, { negotiated: true, id: 0, unordered: true, maxRetransmits: 0 });
    peer.dc = dc;
    dc.onMessage((msg) => peer.receive(msg));
    dc.onOpen(() => this.#opened(peer));
    dc.onClosed(() => this.fail(peer, 'the data channel closed'));
    dc.onError((err) => this.fail(peer, `the data channel failed: ${err}`));
    peer.timer = setTimeout(() => this.fail(peer, `the data channel did not open within ${config.webrtcNegotiationTimeoutMs} ms`), config.webrtcNegotiationTimeoutMs);
    peer.timer.unref?.();
    await gathered;
    if (peer.closed) throw new BackchannelError(ErrorCode.WebRtcFailed, 'the peer connection closed during negotiation');
    const local = pc.localDescription();
    if (!local) throw new BackchannelError(ErrorCode.WebRtcFailed, 'no answer was produced');
    answered = true;
    const answer = local.sdp
      .split('\r\n')
      .map((l) => (l.startsWith('a=candidate:') ? `a=${announce(l.slice(2), config.webrtcAnnouncedAddress)}` : l))
      .join('\r\n');
    return { sdp: answer };
  }

  /** A trickled candidate of the client. Throws `webrtc-bad-candidate` for a malformed one or one before any offer. */
  candidate(session: Session, candidate: string, mid: string): void {
    const peer = this.#peers.get(session);
    if (!peer || peer.closed) throw new BackchannelError(ErrorCode.WebRtcBadCandidate, 'an ICE candidate needs an offer first (rtc.offer)');
    if (!CANDIDATE.test(candidate)) {
      this.counters.refused++;
      throw new BackchannelError(ErrorCode.WebRtcBadCandidate, 'the ICE candidate is malformed (expected "candidate:<foundation> <component> <udp|tcp> <priority> <address> <port> typ <type> …")');
    }
    // mDNS host names (browsers hide local addresses behind them) cannot be resolved here; the
    // server learns the client's address from its connectivity checks instead.
    if (/ [0-9a-f-]+\.local /i.test(candidate)) return;
    try {
      peer.pc.addRemoteCandidate(candidate.startsWith('a=') ? candidate.slice(2) : candidate, mid || '0');
    } catch (error) {
      this.counters.refused++;
      throw new BackchannelError(ErrorCode.WebRtcBadCandidate, `the ICE candidate was refused: ${(error as Error)?.message ?? String(error)}`);
    }
  }

  /** The client stopped using its peer connection (or the session ended): closes it quietly. */
  close(session: Session): void {
    const peer = this.#peers.get(session);
    if (peer) this.#drop(peer);
  }

  #opened(peer: RtcPeer): void {
    if (peer.closed || peer.open) return;
    peer.open = true;
    clearTimeout(peer.timer);
    this.counters.opened++;
    const ms = performance.now() - peer.startedAt;
    const n = this.counters.negotiationMs;
    if (n.length >= 1_000) n.shift();
    n.push(ms);
    peer.session.setDatagramPath(peer);
    this.#log.debug({ ms: Math.round(ms) }, 'WebRTC data channel open');
  }

  /** Ends `peer` after a failure and tells its client (who carries on over the WebSocket). */
  fail(peer: RtcPeer, message: string): void {
    if (peer.closed) return;
    this.counters.failed++;
    this.#drop(peer);
    this.#log.debug({ message }, 'WebRTC path closed');
    peer.session.sendControl({ t: 'rtc.closed', reason: { code: ErrorCode.WebRtcFailed, message } });
  }

  #drop(peer: RtcPeer): void {
    if (peer.closed) return;
    peer.closed = true;
    peer.open = false;
    clearTimeout(peer.timer);
    peer.reassembler.clear();
    if (this.#peers.get(peer.session) === peer) this.#peers.delete(peer.session);
    if (peer.session.datagramPath === peer) peer.session.setDatagramPath(undefined);
    // Closing from inside one of the library's callbacks is allowed, but not before it returns
    // from setting up: defer to the next turn.
    setImmediate(() => {
      try {
        peer.dc?.close();
        peer.pc.close();
      } catch {
        /* already closed */
      }
    });
  }

  /** Closes every peer connection (server shutdown). */
  closeAll(): void {
    for (const peer of [...this.#peers.values()]) this.#drop(peer);
  }
}
