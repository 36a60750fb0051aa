/**
 * HTTP plumbing of the server API: JSON bodies in and out, and the one mapping from error codes
 * to HTTP statuses.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BackchannelError, ErrorCode } from '@backchannel/protocol';

/** HTTP status for an error code (the body always carries the code itself). */
export function httpStatusOf(code: string): number {
  if (code.startsWith('token-') || code === ErrorCode.NotAuthenticated) return 401;
  switch (code) {
    case ErrorCode.PermissionDenied:
      return 403;
    case ErrorCode.NotFound:
    case ErrorCode.RoomNotFound:
    case ErrorCode.CallNotFound:
    case ErrorCode.ParticipantNotFound:
      return 404;
    case ErrorCode.MethodNotAllowed:
      return 405;
    case ErrorCode.MessageTooLarge:
      return 413;
    case ErrorCode.RateLimited:
      return 429;
    case ErrorCode.InternalError:
      return 500;
    case ErrorCode.ServerShutdown:
    case ErrorCode.ClusterUnavailable:
      return 503;
    default:
      return 400;
  }
}

/** Writes `body` as JSON with `status` (204 writes no body). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (status === 204) {
    res.writeHead(204, { 'cache-control': 'no-store', ...headers });
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

/** Writes `error` as `{ code, message, details? }` with its HTTP status. */
export function sendError(res: ServerResponse, error: BackchannelError, headers: Record<string, string> = {}): void {
  sendJson(res, httpStatusOf(error.code), error.toJSON(), headers);
}

/**
 * Reads a JSON request body of at most `limit` bytes. An empty body reads as `undefined`. Throws
 * `message-too-large` or `bad-message` (not JSON).
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
  } catch (cause) {
    throw new BackchannelError(ErrorCode.BadMessage, 'the request body is not valid JSON', { cause });
  }
}

function tooLarge(limit: number): BackchannelError {
  return new BackchannelError(ErrorCode.MessageTooLarge, `the request body exceeds ${limit} bytes`, { details: { limit } });
}
