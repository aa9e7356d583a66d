import { GatewayError, parseRetryAfter } from '@homelab/bus';

/** Ollama's error body: `{"error":"…"}`. Undefined when the body is not that (e.g. a proxy's HTML page). */
function ollamaErrorMessage(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    return typeof parsed?.error === 'string' ? parsed.error : undefined;
  } catch {
    return undefined;
  }
}

function describeBody(response: Response): string {
  return `a non-JSON body (${response.headers.get('content-type') ?? 'no content-type'})`;
}

/** Maps a non-2xx Ollama answer to the shared error table. */
export async function errorFromResponse(response: Response): Promise<GatewayError> {
  const status = response.status;
  const text = await response.text().catch(() => '');
  const message = ollamaErrorMessage(text);
  const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
  const detail = message ?? `HTTP ${status}`;
  if (status === 429) return new GatewayError('rate_limited', `ollama: ${detail}`, retryAfterMs === undefined ? {} : { retryAfterMs });
  if (status === 503) return new GatewayError('backend_unavailable', `ollama: ${detail}`, retryAfterMs === undefined ? {} : { retryAfterMs });
  if (message === undefined) return new GatewayError('backend_error', `ollama answered HTTP ${status} with ${describeBody(response)}`);
  if (status === 404) return new GatewayError('model_not_found', `ollama: ${message}`);
  if (status === 401 || status === 403) return new GatewayError('unauthorized', `ollama: ${message}`);
  if (status >= 500) return new GatewayError('backend_error', `ollama: ${message}`);
  return new GatewayError('invalid_request', `ollama: ${message}`);
}

/** Errors thrown by fetch or by reading a body: the signal's abort → cancelled, anything else → the given code. */
export function fromFetchError(err: unknown, signal: AbortSignal, code: 'backend_unavailable' | 'backend_error', what: string): GatewayError {
  if (err instanceof GatewayError) return err;
  if (signal.aborted) return new GatewayError('cancelled', 'request cancelled', { cause: err });
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const reason = cause?.message ?? cause?.code ?? (err as Error)?.message ?? String(err);
  return new GatewayError(code, `${what}: ${reason}`, { cause: err });
}

import { backendFetch } from '../http.ts';

export interface OllamaRequest {
  /** TCP connect timeout. */
  connectTimeoutMs?: number;
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  signal: AbortSignal;
}

/** One HTTP call to Ollama; resolves only for a 2xx answer, otherwise throws the mapped GatewayError. */
export async function ollamaFetch(baseUrl: string, request: OllamaRequest): Promise<Response> {
  let response: Response;
  try {
    response = await backendFetch(request.connectTimeoutMs)(baseUrl + request.path, {
      method: request.method,
      headers: request.body === undefined ? {} : { 'content-type': 'application/json' },
      body: request.body === undefined ? null : JSON.stringify(request.body),
      signal: request.signal,
    });
  } catch (err) {
    throw fromFetchError(err, request.signal, 'backend_unavailable', `ollama unreachable at ${baseUrl}`);
  }
  if (!response.ok) throw await errorFromResponse(response);
  return response;
}

/** Reads a whole 2xx JSON answer. */
export async function readJson<T>(response: Response, signal: AbortSignal): Promise<T> {
  let text: string;
  try {
    text = await response.text();
  } catch (err) {
    throw fromFetchError(err, signal, 'backend_error', 'ollama connection lost');
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new GatewayError('backend_error', `ollama answered HTTP ${response.status} with ${describeBody(response)}`);
  }
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    throw new GatewayError('backend_error', `ollama: malformed stream line: ${line.slice(0, 120)}`);
  }
}

/** Yields each JSON line of an NDJSON body as it arrives; a line may span network chunks. */
export async function* readNdjson(response: Response, signal: AbortSignal): AsyncGenerator<unknown> {
  const type = response.headers.get('content-type');
  if (type !== null && !type.includes('json')) {
    await response.body?.cancel();
    throw new GatewayError('backend_error', `ollama answered HTTP ${response.status} with ${describeBody(response)}`);
  }
  if (!response.body) return;
  const decoder = new TextDecoder();
  let pending = '';
  try {
    for await (const bytes of response.body) {
      const text = pending + decoder.decode(bytes, { stream: true });
      let start = 0;
      for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
        const line = text.slice(start, end).trim();
        start = end + 1;
        if (line !== '') yield parseLine(line);
      }
      pending = text.slice(start);
    }
  } catch (err) {
    throw fromFetchError(err, signal, 'backend_error', 'ollama connection lost mid-stream');
  }
  const last = (pending + decoder.decode()).trim();
  if (last !== '') yield parseLine(last);
}
