import type { FastifyReply } from 'fastify';
import { GatewayError } from '@homelab/bus';

/** @fastify/multipart's limits, met while the edit form streams in: the client's form is too large. */
const FORM_LIMIT_CODES = new Set(['FST_REQ_FILE_TOO_LARGE', 'FST_FILES_LIMIT', 'FST_PARTS_LIMIT', 'FST_FIELDS_LIMIT']);

/**
 * Whatever an image request threw, as the GatewayError the client gets. Fastify's own 4xx errors
 * (a malformed form) are the client's; anything else is ours, and says no more than `fallback`.
 */
export function asGatewayError(err: unknown, fallback: string): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  if (e.code !== undefined && FORM_LIMIT_CODES.has(e.code)) {
    return new GatewayError('body_too_large', `the edit form is too large (${e.message ?? e.code})`);
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new GatewayError('invalid_request', `${fallback}: ${e.message ?? 'malformed'}`);
  return new GatewayError('internal_error', fallback, { cause: err });
}

/** An error in OpenAI's shape; nothing when the answer has begun (a stream ends with its own error event). */
export function sendImageError(reply: FastifyReply, error: GatewayError, requestId: string): void {
  if (reply.sent || reply.raw.headersSent) return;
  reply.code(error.status).header('x-request-id', requestId).header('content-type', 'application/json');
  if (error.retryAfterMs !== undefined) reply.header('retry-after', String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))));
  reply.send(JSON.stringify(error.toOpenAI()));
}
