/**
 * A room's control channel: one addressed session on reserved stream 65000 that carries small
 * JSON messages to one participant at a time (RPC, data-stream answers). Opened on first use.
 */
import { BackchannelError, ErrorCode, STREAM_ID_CONTROL } from '@backchannel/protocol';
import type { SendDataSession } from '../data/send-session.js';
import type { RoomBase } from '../room.js';

/** A message on the control channel. */
export type ControlMessage = { t: string } & Record<string, unknown>;

export class ControlChannel {
  #tx: Promise<SendDataSession> | undefined;
  /** Sends waiting for the session to open. */
  readonly #opening = new Set<Promise<void>>();

  constructor(private readonly room: RoomBase) {}

  /** Opens the channel's session now (it is otherwise opened by the first `send`). */
  open(): Promise<SendDataSession> {
    this.#tx ??= this.room._openSendSession(STREAM_ID_CONTROL, 'reliable-message', { internalDestination: { addressed: true }, priority: 'high' }, true);
    const tx = this.#tx;
    tx.catch(() => {
      if (this.#tx === tx) this.#tx = undefined;
    });
    return tx;
  }

  /** Sends `msg` to participant `to`. */
  async send(to: string, msg: ControlMessage): Promise<void> {
    const sid = this.room._sidOf(to);
    if (sid === undefined) throw new BackchannelError(ErrorCode.ParticipantNotFound, `participant ${to} is not in this room`, { details: { participantId: to } });
    const sending = this.open().then((tx) => void tx._sendTo(sid, JSON.stringify(msg)));
    this.#opening.add(sending);
    try {
      await sending;
    } finally {
      this.#opening.delete(sending);
    }
  }

  /** Resolves once every message sent so far has left the SDK (or could not be sent). */
  async flushed(): Promise<void> {
    await Promise.allSettled([...this.#opening]);
    const tx = await this.#tx?.catch(() => undefined);
    await tx?._flushed();
  }

  /** Parses a received control message; undefined if malformed. */
  static parse(data: Uint8Array): ControlMessage | undefined {
    try {
      const msg = JSON.parse(new TextDecoder().decode(data)) as unknown;
      return typeof msg === 'object' && msg !== null && typeof (msg as ControlMessage).t === 'string' ? (msg as ControlMessage) : undefined;
    } catch {
      return undefined;
    }
  }
}
