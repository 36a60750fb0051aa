/**
 * The client end of the WebRTC datagram path (docs/webrtc.md, SPEC §7). If the server offers WebRTC,
 * the client opens one peer connection to the server when it first needs the path — its first
 * `unreliable` session, sent or received, in any room — signalled over its session (`rtc.offer`,
 * `rtc.candidate`), with one pre-negotiated data channel (id 0) that is unordered and never
 * retransmits. A client that never uses `unreliable` costs the server no peer connection (memory, a
 * UDP port, negotiation). While it is open, `unreliable` frames go both ways as datagrams;
 * the WebSocket stays the signalling and reliable path and the fallback. Browsers use their native
 * `RTCPeerConnection`; the Node entry installs the one of `node-datachannel` when it is installed.
 *
 * The path's state is visible ({@link TransportInfo}) and every change is reported: the app sees
 * which path `unreliable` data takes and why it is not WebRTC when it is not.
 */
import {
  DATAGRAM_BYTES,
  ErrorCode,
  Reassembler,
  isFragment,
  toDatagrams,
  type Reason,
  type ServerEvent,
  type WebRtcGrant,
} from '@backchannel/protocol';
import type { Link } from './link.js';

/** State of the WebRTC path. */
export type WebRtcState = 'off' | 'unavailable' | 'idle' | 'connecting' | 'open' | 'failed';

/** Which path each kind of data takes (`client.transport`). */
export interface TransportInfo {
  /** `unreliable` data: `'webrtc'` (datagrams) while the data channel is open, else `'websocket'`. */
  unreliable: 'webrtc' | 'websocket';
  /** Signalling and reliable data: always the WebSocket (ordering with signalling, resume). */
  reliable: 'websocket';
  /**
   * The WebRTC path: `'off'` (option `webrtc: false`), `'unavailable'` (the server offers none, or
   * this runtime has no `RTCPeerConnection`), `'idle'` (possible, but not negotiated: no
   * `unreliable` session has been opened or announced yet), `'connecting'`, `'open'`, or `'failed'`.
   */
  webrtc: WebRtcState;
  /** Why `unreliable` does not travel over WebRTC, when it does not. */
  reason?: Reason;
}

/** Counters of the WebRTC path (`client.transportStats`). */
export interface TransportStats {
  /** Datagrams sent and received (a fragmented message counts one per fragment). */
  datagramsOut: number;
  datagramsIn: number;
  /** Datagrams not sent because the channel's buffer was full. */
  datagramsDropped: number;
  /** Fragmented messages dropped whole because a fragment was lost. */
  messagesIncomplete: number;
  /**
   * Time from the start of the last negotiation that opened (the first `unreliable` session, or a
   * fresh negotiation after a failure or a resume) until its data channel opened, ms.
   */
  negotiationMs: number | undefined;
}

/** The standard constructor this module needs (a browser's, or `node-datachannel`'s polyfill). */
export type PeerConnectionConstructor = new (config: RTCConfiguration) => RTCPeerConnection;

let peerConnectionImpl: PeerConnectionConstructor | undefined;

/** Installs the `RTCPeerConnection` to use where the runtime has none (the Node entry does). */
export function setPeerConnectionImpl(impl: PeerConnectionConstructor | undefined): void {
  peerConnectionImpl = impl;
}

function peerConnectionConstructor(): PeerConnectionConstructor | undefined {
  return peerConnectionImpl ?? (globalThis as { RTCPeerConnection?: PeerConnectionConstructor }).RTCPeerConnection;
}

/** Bytes waiting in the channel beyond which datagrams are dropped (counted) instead of queued. */
const SEND_BUFFER_DROP_BYTES = 256 * 1024;
/** A connection that reports `disconnected` this long is given up and negotiated afresh, ms. */
const DISCONNECTED_GRACE_MS = 2_000;
/** Fresh negotiations after a failure, before staying on the WebSocket until the next reconnect. */
const MAX_RETRIES = 3;

/** The path before it is needed: possible, not negotiated (no `unreliable` session yet). */
const IDLE: TransportInfo = Object.freeze({ unreliable: 'websocket', reliable: 'websocket', webrtc: 'idle' });

/** The WebRTC path of one client; `onchange` is called on every change of {@link TransportInfo}. */
export class WebRtcPath {
  readonly #enabled: boolean;
  readonly #onchange: (info: TransportInfo) => void;
  #info: TransportInfo;
  #link: Link | undefined;
  #grant: WebRtcGrant | undefined;
  #pc: RTCPeerConnection | undefined;
  #dc: RTCDataChannel | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #retries = 0;
  /** An `unreliable` session was opened or announced: the path is wanted (kept across a resume). */
  #wanted = false;
  #nextMessage = 0;
  #reassembler = new Reassembler();
  #offList: (() => void) | undefined;
  /** Remote candidates that came before the answer was applied. */
  #early: { candidate: string; mid: string }[] | undefined;
  readonly stats: TransportStats = { datagramsOut: 0, datagramsIn: 0, datagramsDropped: 0, messagesIncomplete: 0, negotiationMs: undefined };

  constructor(enabled: boolean, onchange: (info: TransportInfo) => void) {
    this.#enabled = enabled;
    this.#onchange = onchange;
    this.#info = enabled ? IDLE : this.#offInfo();
  }

  #offInfo(): TransportInfo {
    return { unreliable: 'websocket', reliable: 'websocket', webrtc: 'off', reason: { code: ErrorCode.WebRtcUnavailable, message: 'WebRTC is turned off in this client (option webrtc)' } };
  }

  /** Which path each kind of data takes now. */
  get info(): TransportInfo {
    return { ...this.#info };
  }

  #set(info: TransportInfo, force = false): void {
    const before = this.#info;
    this.#info = info;
    if (force || before.unreliable !== info.unreliable || before.webrtc !== info.webrtc) this.#onchange({ ...info });
  }

  /**
   * Takes `link` (after a welcome or a resume): says at once whether the path is possible, and
   * negotiates it if it is wanted already (a resume of a client that had used it), else waits for
   * {@link want}. `fresh`: a new participant (no session of the old one is left), so the path is
   * not wanted until a session of the new one asks for it.
   */
  start(link: Link, grant: WebRtcGrant | undefined, fresh = false): void {
    this.stop();
    this.#link = link;
    this.#grant = grant;
    this.#retries = 0;
    if (fresh) this.#wanted = false;
    if (!this.#enabled) return this.#set(this.#offInfo());
    const Impl = peerConnectionConstructor();
    if (!grant) return this.#set({ unreliable: 'websocket', reliable: 'websocket', webrtc: 'unavailable', reason: { code: ErrorCode.WebRtcUnavailable, message: 'the server offers no WebRTC' } });
    if (!Impl) return this.#set({ unreliable: 'websocket', reliable: 'websocket', webrtc: 'unavailable', reason: { code: ErrorCode.WebRtcUnavailable, message: 'this runtime has no RTCPeerConnection (in Node: install node-datachannel)' } });
    if (this.#wanted) void this.#negotiate(Impl, grant, link);
    else this.#set(IDLE);
  }

  /**
   * The client has an `unreliable` session (it opened one, or one toward it was announced): the
   * first call negotiates the path, if it is possible and not negotiated yet. Until the channel
   * opens, `unreliable` data goes over the WebSocket. Later calls change nothing (a failed path
   * follows its own retry rules).
   */
  want(): void {
    this.#wanted = true;
    if (this.#info.webrtc !== 'idle' || !this.#link?.attached || !this.#grant) return;
    const Impl = peerConnectionConstructor();
    if (Impl) void this.#negotiate(Impl, this.#grant, this.#link);
  }

  /** Closes the path (the link was lost, or the client closed); `unreliable` goes over the WebSocket. */
  stop(reason?: Reason): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#teardown();
    if (reason && this.#info.webrtc !== 'off' && this.#info.webrtc !== 'unavailable' && this.#info.webrtc !== 'idle') this.#set({ unreliable: 'websocket', reliable: 'websocket', webrtc: 'failed', reason });
  }

  async #negotiate(Impl: PeerConnectionConstructor, grant: WebRtcGrant, link: Link): Promise<void> {
    this.#set({ unreliable: 'websocket', reliable: 'websocket', webrtc: 'connecting' });
    const started = Date.now();
    let pc: RTCPeerConnection;
    try {
      pc = new Impl({ iceServers: grant.iceServers.map((s) => ({ ...s })) });
    } catch (error) {
      const message = `the peer connection could not be created: ${(error as Error)?.message ?? String(error)}`;
      return this.#set({ unreliable: 'websocket', reliable: 'websocket', webrtc: 'failed', reason: { code: ErrorCode.WebRtcFailed, message } });
    }
    this.#pc = pc;
    this.#early = [];
    this.#reassembler = new Reassembler();
    const dc = pc.createDataChannel('backchannel-unreliable', { negotiated: true, id: 0, ordered: false, maxRetransmits: 0 });
    this.#dc = dc;
    dc.binaryType = 'arraybuffer';
    // Handlers attached in the same turn: nothing the channel receives is left unread.
    dc.onmessage = (ev: MessageEvent) => this.#receive(ev.data);
    dc.onopen = () => {
      if (this.#pc !== pc) return;
      clearTimeout(this.#timer);
      this.#retries = 0;
      this.stats.negotiationMs = Date.now() - started;
      link.datagrams = { send: (frame) => this.#send(frame) };
      this.#set({ unreliable: 'webrtc', reliable: 'websocket', webrtc: 'open' });
    };
    dc.onclose = () => this.#fail(pc, 'the data channel closed');
    pc.onicecandidate = (ev: RTCPeerConnectionIceEvent) => {
      const c = ev.candidate;
      if (this.#pc !== pc || !c || !c.candidate) return;
      link.request({ t: 'rtc.candidate', candidate: c.candidate, mid: c.sdpMid ?? '0' }).catch(() => undefined);
    };
    let disconnectedTimer: ReturnType<typeof setTimeout> | undefined;
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      clearTimeout(disconnectedTimer);
      if (state === 'failed') this.#fail(pc, 'the peer connection failed');
      // A network change: given up after a grace period, then negotiated afresh (an ICE restart).
      else if (state === 'disconnected') disconnectedTimer = setTimeout(() => this.#fail(pc, 'the peer connection was disconnected'), DISCONNECTED_GRACE_MS);
    };
    const off = link.on('event', (ev) => this.#onEvent(pc, ev));
    this.#offList = () => {
      off();
      clearTimeout(disconnectedTimer);
    };
    this.#timer = setTimeout(() => this.#fail(pc, `the data channel did not open within ${grant.negotiationTimeoutMs} ms`), grant.negotiationTimeoutMs);
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const sdp = pc.localDescription?.sdp ?? offer.sdp ?? '';
      if (this.#pc !== pc) return;
      const answer = await link.request<{ sdp: string }>({ t: 'rtc.offer', sdp });
      if (this.#pc !== pc) return;
      await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
      const early = this.#early ?? [];
      this.#early = undefined;
      for (const c of early) await this.#addCandidate(pc, c.candidate, c.mid);
    } catch (error) {
      const e = error as { code?: string; message?: string };
      this.#fail(pc, `negotiation failed: ${e?.message ?? String(error)}`, e?.code === ErrorCode.WebRtcUnavailable ? ErrorCode.WebRtcUnavailable : undefined);
    }
  }

  #onEvent(pc: RTCPeerConnection, ev: ServerEvent): void {
    if (this.#pc !== pc) return;
    if (ev.t === 'rtc.candidate') {
      if (this.#early) this.#early.push({ candidate: ev.candidate, mid: ev.mid });
      else void this.#addCandidate(pc, ev.candidate, ev.mid);
    } else if (ev.t === 'rtc.closed') this.#fail(pc, ev.reason.message);
  }

  async #addCandidate(pc: RTCPeerConnection, candidate: string, mid: string): Promise<void> {
    try {
      await pc.addIceCandidate({ candidate, sdpMid: mid });
    } catch {
      /* a candidate this end cannot use; the others may do */
    }
  }

  /**
   * The path failed: `unreliable` goes over the WebSocket at once, and a fresh negotiation (a new
   * peer connection: an ICE restart after a network change, or another try after a handshake lost
   * on a lossy network) follows after 1, 2 and 4 s; after that the path stays on the WebSocket
   * until the next reconnect (UDP blocked, say). An opened path starts the count again.
   */
  #fail(pc: RTCPeerConnection, message: string, code: string = ErrorCode.WebRtcFailed): void {
    if (this.#pc !== pc) return;
    const link = this.#link;
    this.#teardown();
    if (link?.attached) {
      // The server may have closed the path first, its `rtc.closed` (with the reason: the client's
      // datagram flood, say) still on its way behind the channel's close: it comes before the
      // reply to this `rtc.close`, and its reason then replaces the local one.
      const off = link.on('event', (ev) => {
        if (ev.t === 'rtc.closed' && !this.#pc && this.#info.webrtc === 'failed' && this.#info.reason?.message !== ev.reason.message) this.#set({ ...this.#info, reason: ev.reason }, true);
      });
      link.request({ t: 'rtc.close' }).then(off, off);
    }
    const unavailable = code === ErrorCode.WebRtcUnavailable;
    this.#set({ unreliable: 'websocket', reliable: 'websocket', webrtc: unavailable ? 'unavailable' : 'failed', reason: { code, message } });
    if (!unavailable && link && this.#grant && this.#retries < MAX_RETRIES) {
      const delay = 1_000 * 2 ** this.#retries++;
      const grant = this.#grant;
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        const Impl = peerConnectionConstructor();
        if (Impl && link.attached && this.#link === link) void this.#negotiate(Impl, grant, link);
      }, delay);
      (this.#retryTimer as { unref?: () => void }).unref?.();
    }
  }

  #teardown(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#offList?.();
    this.#offList = undefined;
    if (this.#link?.datagrams) this.#link.datagrams = undefined;
    const pc = this.#pc;
    const dc = this.#dc;
    this.#pc = undefined;
    this.#dc = undefined;
    this.#early = undefined;
    this.#reassembler.clear();
    if (dc) {
      dc.onmessage = null;
      dc.onopen = null;
      dc.onclose = null;
    }
    if (pc) {
      pc.onicecandidate = null;
      pc.onconnectionstatechange = null;
      try {
        dc?.close();
        pc.close();
      } catch {
        /* already closed */
      }
    }
  }

  /** Sends one encoded `unreliable` frame as datagrams; false if dropped (a full buffer). */
  #send(frame: Uint8Array): boolean {
    const dc = this.#dc;
    if (!dc || dc.readyState !== 'open') return false;
    if (dc.bufferedAmount > SEND_BUFFER_DROP_BYTES) {
      this.stats.datagramsDropped++;
      return false;
    }
    try {
      if (frame.byteLength <= DATAGRAM_BYTES) {
        dc.send(frame as Uint8Array<ArrayBuffer>);
        this.stats.datagramsOut++;
        return true;
      }
      const id = this.#nextMessage;
      this.#nextMessage = (id + 1) >>> 0;
      for (const d of toDatagrams(frame, id)) {
        dc.send(d as Uint8Array<ArrayBuffer>);
        this.stats.datagramsOut++;
      }
      return true;
    } catch {
      this.stats.datagramsDropped++;
      return false;
    }
  }

  #receive(data: unknown): void {
    let buf: Uint8Array;
    if (data instanceof ArrayBuffer) buf = new Uint8Array(data);
    else if (data instanceof Uint8Array) buf = data;
    else return; // text: not part of the protocol
    this.stats.datagramsIn++;
    if (isFragment(buf)) {
      const before = this.#reassembler.dropped;
      let whole: Uint8Array | undefined;
      try {
        whole = this.#reassembler.push(buf);
      } catch {
        return; // a server never sends malformed fragments
      }
      this.stats.messagesIncomplete += this.#reassembler.dropped - before;
      if (!whole) return;
      buf = whole;
    }
    this.#link?.receiveDatagram(buf);
  }
}
