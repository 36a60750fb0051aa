/**
 * Parsing and validation of client→server control messages: the boundary where untrusted JSON
 * becomes a typed message or a `bad-message` error naming the offending field.
 */
import { Value } from '@sinclair/typebox/value';
import { BackchannelError, ErrorCode } from './errors.js';
import { ClientMessageSchemas, type ClientMessage, type ClientMessageType } from './messages.js';

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Deepest nesting of arrays and objects a control message may have. */
export const MAX_JSON_DEPTH = 32;

/**
 * Whether the JSON text in `body` nests arrays/objects deeper than `max`: one pass over the bytes,
 * before any parsing, so a hostile message costs no more than its length.
 */
export function jsonTooDeep(body: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * Parses the JSON body of a control frame; throws `bad-frame` if it is not a JSON object and
 * `invalid-argument` if it nests deeper than {@link MAX_JSON_DEPTH}.
 */
export function parseControlBody(body: Uint8Array): Record<string, unknown> {
  if (jsonTooDeep(body, MAX_JSON_DEPTH)) throw new BackchannelError(ErrorCode.InvalidArgument, `control message nests deeper than ${MAX_JSON_DEPTH} levels`);
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(body));
  } catch (cause) {
    throw new BackchannelError(ErrorCode.BadFrame, 'control frame body is not valid UTF-8 JSON', { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BackchannelError(ErrorCode.BadFrame, 'control frame body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/**
 * Validates a parsed object as a client request. Throws `bad-message` (with `details.id` when the
 * request id could be read, so the error can be sent as that request's reply).
 */
export function validateClientMessage(msg: Record<string, unknown>): ClientMessage {
  const id = Number.isInteger(msg.id) ? (msg.id as number) : undefined;
  const details = id === undefined ? {} : { id };
  const t = msg.t;
  if (typeof t !== 'string' || !Object.hasOwn(ClientMessageSchemas, t)) {
    throw new BackchannelError(ErrorCode.BadMessage, `unknown message type ${JSON.stringify(t)}`, { details });
  }
  const schema = ClientMessageSchemas[t as ClientMessageType];
  if (!Value.Check(schema, msg)) {
    const first = Value.Errors(schema, msg).First();
    const where = first?.path || '/';
    throw new BackchannelError(ErrorCode.BadMessage, `invalid "${t}" message: ${where} ${first?.message ?? 'is invalid'}`, { details });
  }
  return msg as ClientMessage;
}
