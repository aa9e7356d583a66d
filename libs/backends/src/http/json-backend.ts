import type { DialectName } from '@homelab/dialects';
import { GatewayError } from '@homelab/bus';
import type { BackendCall } from '../types.ts';
import { readAll, type BackendOrigin, type HttpAnswer } from './origin.ts';

/** A short request to a backend's own API (listing models, counting tokens): a few seconds at most. */
export const SHORT_CALL = { headersTimeoutMs: 5000, bodyTimeoutMs: 5000 };

/** Sends a request in one of the backend's dialects to the path that dialect has on it. */
export async function sendTo(origin: BackendOrigin, paths: Partial<Record<DialectName, string>>, headers: Record<string, string>, call: BackendCall): Promise<HttpAnswer> {
  const path = pathFor(origin.provider, paths, call.dialect);
  return origin.request({
    method: 'POST', path, body: call.body, signal: call.signal,
    headers: { ...headers, ...call.headers, ...(call.requestId && { 'x-request-id': call.requestId }) },
    headersTimeoutMs: call.headersTimeoutMs, bodyTimeoutMs: call.bodyTimeoutMs,
  });
}

/** Where a dialect lives on a backend; a clear error for one it does not speak. */
export function pathFor(provider: string, paths: Partial<Record<DialectName, string>>, dialect: DialectName): string {
  const path = paths[dialect];
  if (!path) throw new GatewayError('invalid_request', `${provider} does not speak ${dialect}`);
  return path;
}

/** GETs (or POSTs) a small JSON answer from a backend's own API. */
export async function fetchJson<T>(origin: BackendOrigin, path: string, signal: AbortSignal, options: { headers?: Record<string, string>; body?: unknown } = {}): Promise<T> {
  const answer = await origin.request({
    method: options.body === undefined ? 'GET' : 'POST', path, signal, ...SHORT_CALL,
    headers: { ...options.headers, ...(options.body !== undefined && { 'content-type': 'application/json' }) },
    ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
  });
  const text = (await readAll(answer.body)).toString('utf8');
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new GatewayError('backend_error', `${origin.provider} answered ${path} with a non-JSON body (${answer.contentType || 'no content-type'})`);
  }
}
