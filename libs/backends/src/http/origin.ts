import { Agent, Pool, fetch as undiciFetch, type Dispatcher } from 'undici';
import { GatewayError } from '@homelab/bus';
import type { ProviderName } from '../types.ts';
import { errorFromStatus } from './status.ts';

/** How long the gateway waits on a backend: per request, from the lab's config. */
export interface BackendTimeouts {
  /** Until the answer's headers: for a non-streamed answer that is the whole generation. */
  headersTimeoutMs: number;
  /** Longest silence between two pieces of a body once it flows. */
  bodyTimeoutMs: number;
}

export interface HttpCall extends BackendTimeouts {
  method: 'GET' | 'POST';
  path: string;
  body?: Uint8Array | string;
  headers?: Record<string, string>;
  /** Aborted when the requester goes away or the gateway gives up: the backend request is aborted too. */
  signal: AbortSignal;
}

/** A 2xx answer whose body has not been read yet. */
export interface HttpAnswer {
  status: number;
  contentType: string;
  /** The body as it arrives; iterating ends, or throws the mapped GatewayError, exactly once. */
  body: AsyncIterable<Uint8Array>;
}

/** The most of an error body read to explain a failure. */
const ERROR_BODY_LIMIT = 64 * 1024;

/**
 * One backend origin (`http://192.168.1.7:8000`) with a keep-alive connection pool (undici). A
 * request resolves with a 2xx answer or throws the backend's failure as a GatewayError; reading the
 * body throws one too (connection lost, idle timeout, abort). Nothing here throws after the body
 * ended or was abandoned: undici owns the socket's life.
 */
export class BackendOrigin {
  readonly provider: ProviderName;
  readonly url: string;
  readonly #pool: Pool;
  readonly #connectTimeoutMs: number;

  constructor(options: { provider: ProviderName; url: string; connectTimeoutMs: number }) {
    this.provider = options.provider;
    this.url = options.url.replace(/\/+$/, '');
    this.#connectTimeoutMs = options.connectTimeoutMs;
    // Idle connections are closed after 4 s: below the 5 s that uvicorn (vLLM) and Go (Ollama)
    // servers keep them, so a request never lands on a socket the server is closing.
    this.#pool = new Pool(this.url, { connect: { timeout: options.connectTimeoutMs }, keepAliveTimeout: 4000, keepAliveMaxTimeout: 4000 });
  }

  async request(call: HttpCall): Promise<HttpAnswer> {
    let response: Dispatcher.ResponseData;
    try {
      response = await this.#pool.request({
        method: call.method, path: call.path, body: call.body ?? null, signal: call.signal,
        headers: call.headers ?? {}, headersTimeout: call.headersTimeoutMs, bodyTimeout: call.bodyTimeoutMs,
      });
    } catch (err) {
      throw transportError(err, this.provider, call, 'connect', this.#connectTimeoutMs);
    }
    const contentType = headerText(response.headers['content-type']);
    if (response.statusCode < 200 || response.statusCode >= 300) {
      const text = await readText(response.body, ERROR_BODY_LIMIT).catch(() => '');
      throw errorFromStatus(this.provider, response.statusCode, text, { contentType, retryAfter: headerText(response.headers['retry-after']), retryAfterMs: headerText(response.headers['retry-after-ms']) });
    }
    return { status: response.statusCode, contentType, body: guardedBody(response.body, this.provider, call) };
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

/** The body's chunks; a failure while reading is mapped once, here. */
async function* guardedBody(body: AsyncIterable<Uint8Array>, provider: ProviderName, call: HttpCall): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of body) yield chunk;
  } catch (err) {
    throw transportError(err, provider, call, 'body');
  }
}

/** Reads a whole body (a non-streamed answer). */
export async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of body) parts.push(chunk);
  return parts.length === 1 && Buffer.isBuffer(parts[0]) ? parts[0] : Buffer.concat(parts);
}

async function readText(body: AsyncIterable<Uint8Array> & { destroy?(): void }, limit: number): Promise<string> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    parts.push(chunk);
    size += chunk.length;
    if (size >= limit) break;
  }
  return Buffer.concat(parts).subarray(0, limit).toString('utf8');
}

function headerText(value: string | string[] | undefined): string {
  return Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ETIMEDOUT']);

/**
 * A transport failure as a GatewayError. An aborted signal wins: its reason (a GatewayError for a
 * timeout or a cancel) or `cancelled`. Before the answer began (`connect`), a lost connection means
 * the backend is unavailable; while reading the body it means the answer was cut.
 */
export function transportError(err: unknown, provider: ProviderName, call: Pick<HttpCall, 'signal' | 'headersTimeoutMs' | 'bodyTimeoutMs'>, phase: 'connect' | 'body', connectTimeoutMs?: number): GatewayError {
  if (err instanceof GatewayError) return err;
  if (call.signal.aborted) {
    const reason: unknown = call.signal.reason;
    return reason instanceof GatewayError ? reason : new GatewayError('cancelled', `${provider} request cancelled`, { cause: err });
  }
  const code = errorCode(err);
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new GatewayError('backend_unavailable', `${provider} is unreachable: no connection within ${connectTimeoutMs ?? '?'} ms`, { cause: err });
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new GatewayError('timeout', `${provider} did not answer within ${call.headersTimeoutMs} ms`, { cause: err });
    case 'UND_ERR_BODY_TIMEOUT':
      return new GatewayError('timeout', `${provider} sent nothing for ${call.bodyTimeoutMs} ms`, { cause: err });
  }
  if (phase === 'body') return new GatewayError('backend_error', `${provider} closed the connection mid-answer`, { cause: err });
  if (code && (UNREACHABLE.has(code) || code === 'UND_ERR_SOCKET')) return new GatewayError('backend_unavailable', `${provider} is unreachable: ${code}`, { cause: err });
  return new GatewayError('backend_error', `${provider} request failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown }; errors?: { code?: unknown }[] };
  if (typeof e?.code === 'string') return e.code;
  if (typeof e?.cause?.code === 'string') return e.cause.code;
  // Happy eyeballs: an AggregateError of each address's failure.
  const inner = e?.errors?.find((x) => typeof x?.code === 'string');
  return inner?.code as string | undefined;
}

/**
 * The `fetch` the official SDKs (OpenAI, Anthropic) use: undici's, on a keep-alive agent with the
 * connect timeout, and the idle timeout between two pieces of a streamed body.
 */
export function sdkFetch(options: { connectTimeoutMs: number; bodyTimeoutMs: number }): typeof fetch {
  const agent = new Agent({ connect: { timeout: options.connectTimeoutMs }, keepAliveTimeout: 4000, bodyTimeout: options.bodyTimeoutMs, headersTimeout: 0 });
  const bound = (input: Parameters<typeof undiciFetch>[0], init?: Parameters<typeof undiciFetch>[1]) => undiciFetch(input, { ...init, dispatcher: agent });
  return bound as unknown as typeof fetch;
}
