import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { MediaError, PollAborted } from './errors.ts';

export interface HttpClientOptions {
  /** Base URL of the service (`http://host:port`, maybe with a URL base path). */
  baseUrl: string;
  timeoutMs: number;
  maxBytes: number;
  /** Sent on every request (the API key header). */
  headers?: Record<string, string>;
}

export interface HttpRequest {
  method?: 'GET' | 'POST';
  query?: Record<string, string | number | boolean>;
  body?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The path that was requested (no query). */
  endpoint: string;
}

/** `http://user:pass@host:1234/base?apikey=x` → `http://host:1234`: what may appear in status replies and logs. */
export function safeOrigin(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/**
 * The media service's HTTP client: one deadline for the whole exchange (headers and body), a cap on
 * the body size, and every failure turned into a MediaError whose message names the path, never the
 * query string or a header. Credentials in the base URL's user-info are sent as Basic auth, not kept
 * in the URL.
 */
export class HttpClient {
  readonly #base: URL;
  readonly #options: HttpClientOptions;
  readonly #headers: Record<string, string>;

  constructor(options: HttpClientOptions) {
    this.#options = options;
    const base = new URL(options.baseUrl);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'homelab-gateway-media/0.1', ...options.headers };
    if (base.username || base.password) {
      headers['authorization'] ??= `Basic ${Buffer.from(`${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`).toString('base64')}`;
      base.username = '';
      base.password = '';
    }
    base.search = '';
    base.hash = '';
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.#base = base;
    this.#headers = headers;
  }

  get origin(): string {
    return this.#base.origin;
  }

  async send(path: string, request: HttpRequest = {}): Promise<HttpResponse> {
    const url = new URL(path.replace(/^\//, ''), this.#base);
    const endpoint = url.pathname;
    for (const [k, v] of Object.entries(request.query ?? {})) url.searchParams.set(k, String(v));
    const timeout = AbortSignal.timeout(this.#options.timeoutMs);
    const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await fetch(url, {
        method: request.method ?? 'GET', headers: { ...this.#headers, ...request.headers }, signal, redirect: 'manual',
        ...(request.body !== undefined && { body: request.body }),
      });
    } catch (err) {
      throw this.#networkError(err, endpoint, request.signal, 'waiting for the answer');
    }
    const text = await this.#readBody(res, endpoint, signal, request.signal);
    return { status: res.status, headers: res.headers, text, endpoint };
  }

  /** GET and parse JSON; a 2xx answer that is not JSON, or does not match `check`, is an error. */
  async json<S extends TSchema>(path: string, check: TypeCheck<S>, request: HttpRequest = {}): Promise<Static<S>> {
    const res = await this.send(path, request);
    checkStatus(res);
    return parseJsonBody(res, check);
  }

  async #readBody(res: Response, endpoint: string, signal: AbortSignal, callerSignal: AbortSignal | undefined): Promise<string> {
    const declared = Number(res.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > this.#options.maxBytes) {
      await res.body?.cancel().catch(() => undefined);
      throw new MediaError('too_large', `${endpoint}: the answer is ${declared} bytes, more than media.maxResponseBytes (${this.#options.maxBytes})`, { endpoint, status: res.status });
    }
    if (!res.body) return '';
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.byteLength;
        if (total > this.#options.maxBytes) {
          await reader.cancel().catch(() => undefined);
          throw new MediaError('too_large', `${endpoint}: the answer exceeds media.maxResponseBytes (${this.#options.maxBytes})`, { endpoint, status: res.status });
        }
        chunks.push(value);
      }
    } catch (err) {
      if (err instanceof MediaError) throw err;
      if (signal.aborted) throw this.#networkError(err, endpoint, callerSignal, 'reading the body');
      throw new MediaError('invalid_json', `${endpoint}: the answer was cut off after ${total} bytes`, { endpoint, status: res.status, cause: err });
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  #networkError(err: unknown, endpoint: string, callerSignal: AbortSignal | undefined, during: string): Error {
    if (callerSignal?.aborted) return new PollAborted();
    const e = err as Error & { cause?: { code?: string } };
    if (e?.name === 'TimeoutError' || e?.name === 'AbortError') {
      return new MediaError('timeout', `${endpoint}: no answer within ${this.#options.timeoutMs} ms (${during})`, { endpoint, cause: err });
    }
    const code = e?.cause?.code ?? (err as { code?: string })?.code;
    return new MediaError('unreachable', `${endpoint}: ${code ?? 'connection failed'} (${this.#base.host})`, { endpoint, cause: err });
  }
}

/** Non-2xx answers as errors: 401/403 are credentials (`auth`), the rest `http`. */
export function checkStatus(res: HttpResponse): void {
  const { status, endpoint } = res;
  if (status >= 200 && status < 300) return;
  if (status === 401) throw new MediaError('auth', `${endpoint}: HTTP 401, the API key was refused`, { status, endpoint });
  if (status === 403) throw new MediaError('auth', `${endpoint}: HTTP 403, not allowed with this key`, { status, endpoint });
  if (status >= 300 && status < 400) throw new MediaError('http', `${endpoint}: HTTP ${status} redirect (a login page or a wrong URL base?)`, { status, endpoint });
  throw new MediaError('http', `${endpoint}: HTTP ${status}${isHtml(res) ? ' (an HTML error page)' : ''}`, { status, endpoint });
}

function isHtml(res: HttpResponse): boolean {
  const type = res.headers.get('content-type') ?? '';
  return /html/i.test(type) || /^\s*</.test(res.text.slice(0, 64));
}

export function parseJsonBody<S extends TSchema>(res: HttpResponse, schema: TypeCheck<S>): Static<S> {
  const { endpoint, status } = res;
  if (isHtml(res)) throw new MediaError('not_json', `${endpoint}: expected JSON, got an HTML page (HTTP ${status})`, { status, endpoint });
  if (res.text.trim() === '') throw new MediaError('invalid_json', `${endpoint}: empty answer where JSON was expected`, { status, endpoint });
  let value: unknown;
  try {
    value = JSON.parse(res.text);
  } catch {
    throw new MediaError('invalid_json', `${endpoint}: malformed or truncated JSON (${Buffer.byteLength(res.text)} bytes)`, { status, endpoint });
  }
  if (!schema.Check(value)) {
    const first = schema.Errors(value).First();
    throw new MediaError('invalid_response', `${endpoint}: unexpected shape at '${first?.path || '/'}': ${first?.message ?? 'invalid'}`, { status, endpoint });
  }
  return value;
}

/** Compiles a response schema once. */
export function shape<S extends TSchema>(schema: S): TypeCheck<S> {
  return TypeCompiler.Compile(schema);
}
