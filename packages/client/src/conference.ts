import { LeaveReason, type RoomInfo } from '@backchannel/protocol';
import { RoomBase, type ClientCore } from './room.js';

/** A conference (group call) this client has joined. */
export class Conference extends RoomBase {
  readonly name: string;

  /** @internal */
  constructor(
    core: ClientCore,
    info: RoomInfo,
    private readonly detachFn: (c: Conference) => void,
  ) {
    super(core);
    this.name = info.name;
    this._applyInfo(info);
  }

  /** This participant's metadata (as last confirmed by the server). */
  get metadata(): unknown {
    return this.self?.metadata;
  }

  /** Replaces this participant's metadata; everyone else gets `participantUpdated`. */
  async updateMetadata(metadata: unknown): Promise<void> {
    await this.core.link.request({ t: 'room.metadata', room: this.roomNum, metadata });
    if (this.self) this.self = { ...this.self, metadata };
  }

  /** Leaves the conference. */
  async leave(): Promise<void> {
    if (this.isEnded) return;
    await this.core.link.request({ t: 'room.leave', room: this.roomNum });
    this._end({ code: LeaveReason.Left, message: 'you left the conference' });
  }

  protected _detach(): void {
    this.detachFn(this);
  }
}
