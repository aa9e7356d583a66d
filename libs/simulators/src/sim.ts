import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * Faults a simulator can inject, set at start or changed at any time with `setFaults`.
 * Every simulator honours all of them on its generation endpoints.
 */
export interface SimFaults {
  /** Answer generation requests with this HTTP status, in the backend's own error shape. */
  status?: number;
  /** With `status` 429 or 503: the `Retry-After` header, in seconds. */
  retryAfterSeconds?: number;
  /** Share (0..1) of requests that get `status`; 1 when unset. Drawn per request. */
  failRatio?: number;
  /** Only the next N requests get `status`, then the fault clears itself. */
  failCount?: number;
  /** Wait this long before the first token (or before the non-streaming answer). */
  stallBeforeFirstTokenMs?: number;
  /** Destroy the connection after this many content chunks were written (a drop mid-stream). */
  dropAfterChunks?: number;
  /** Share (0..1) of streams cut mid-answer: after `dropAfterChunks` chunks, or at a random one when that is unset. */
  dropRatio?: number;
  /** Write a line that is not valid JSON after this many content chunks, then continue. */
  malformedAfterChunks?: number;
}

export interface SimOptions {
  /** Port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Models the simulator serves; requests for others get the backend's 404. */
  models?: string[];
  /** Content tokens per answer (default 8). */
  tokens?: number;
  /** Delay between streamed tokens in ms (default 0: as fast as possible). */
  tokenIntervalMs?: number;
  faults?: SimFaults;
}

/** What a simulator saw of one request, for tests to assert on. */
export interface SimRequestRecord {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  /** Parsed JSON body, or undefined when there was none or it did not parse. */
  body: unknown;
  /** The body's bytes exactly as they arrived (for tests that prove a request passed through unchanged). */
  rawBody?: Buffer;
  /** The client went away before the answer was complete. */
  aborted: boolean;
  /** The answer was written to the end. */
  completed: boolean;
  /** Every byte of the answer's body as written, for tests that compare what a client got with what was sent. */
  written: Buffer[];
  /** When the answer ended, by completion or abort (epoch ms). */
  closedAt?: number;
}

export interface Simulator {
  /** Origin, e.g. `http://127.0.0.1:43121`. */
  readonly url: string;
  readonly port: number;
  readonly requests: SimRequestRecord[];
  setFaults(faults: SimFaults): void;
  setOptions(options: Omit<SimOptions, 'port'>): void;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface SimContext {
  readonly options: Required<Omit<SimOptions, 'port' | 'faults'>>;
  readonly record: SimRequestRecord;
  /** Returns the status fault to apply to this request, if any (consumes `failCount`, draws `failRatio`). */
  drawStatusFault(): { status: number; retryAfterSeconds?: number } | undefined;
  /** The content chunk after which this stream is cut, if it is (`dropAfterChunks`, drawn by `dropRatio`). */
  drawDrop(chunks: number): number | undefined;
  readonly faults: SimFaults;
  readonly abortSignal: AbortSignal;
}

export type SimHandler = (req: IncomingMessage, res: ServerResponse, ctx: SimContext) => Promise<void> | void;

const WORDS = ['The', ' lab', ' answers', ' from', ' the', ' local', ' GPU', ' node', ',', ' token', ' by', ' token', '.'];

/** Deterministic answer text: token i of every answer is the same, so tests can predict content. */
export function simToken(i: number): string {
  return WORDS[i % WORDS.length]!;
}

export function simText(tokens: number): string {
  let out = '';
  for (let i = 0; i < tokens; i++) out += simToken(i);
  return out;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

/** Reads the whole body; undefined when empty. Throws SyntaxError on bad JSON. Keeps the bytes in `record` when given. */
export async function readJsonBody(req: IncomingMessage, record?: SimRequestRecord): Promise<unknown> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  if (parts.length === 0) return undefined;
  const raw = Buffer.concat(parts);
  if (record) record.rawBody = raw;
  const text = raw.toString('utf8');
  return text.length === 0 ? undefined : JSON.parse(text);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Keeps a copy of every body byte a response writes. */
function recordWrites(res: ServerResponse, into: Buffer[]): void {
  const keep = (chunk: unknown): void => {
    if (typeof chunk === 'string') into.push(Buffer.from(chunk));
    else if (chunk instanceof Uint8Array) into.push(Buffer.from(chunk));
  };
  const write = res.write.bind(res);
  const end = res.end.bind(res);
  res.write = ((chunk: unknown, ...rest: unknown[]) => { keep(chunk); return (write as (...a: unknown[]) => boolean)(chunk, ...rest); }) as typeof res.write;
  res.end = ((chunk?: unknown, ...rest: unknown[]) => { if (typeof chunk !== 'function') keep(chunk); return (end as (...a: unknown[]) => ServerResponse)(chunk, ...rest); }) as typeof res.end;
}

/**
 * Starts an HTTP server on 127.0.0.1 that records every request and hands it to `handler`
 * with the current options and faults. Simulators build on this and only write their wire format.
 */
export async function startSimServer(initial: SimOptions, handler: SimHandler): Promise<Simulator> {
  let options = { models: initial.models ?? ['sim-model'], tokens: initial.tokens ?? 8, tokenIntervalMs: initial.tokenIntervalMs ?? 0 };
  let faults: SimFaults = { ...initial.faults };
  const requests: SimRequestRecord[] = [];
  const sockets = new Set<Socket>();

  const server: Server = createServer((req, res) => {
    const record: SimRequestRecord = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: undefined, aborted: false, completed: false, written: [] };
    requests.push(record);
    recordWrites(res, record.written);
    const controller = new AbortController();
    res.on('close', () => {
      record.closedAt = Date.now();
      if (!res.writableFinished) { record.aborted = true; controller.abort(); } else record.completed = true;
    });
    const ctx: SimContext = {
      options,
      record,
      faults,
      abortSignal: controller.signal,
      drawStatusFault() {
        const status = faults.status;
        if (!status) return undefined;
        if (faults.failCount !== undefined) {
          if (faults.failCount <= 0) return undefined;
          faults = { ...faults, failCount: faults.failCount - 1 };
        }
        if (faults.failRatio !== undefined && Math.random() >= faults.failRatio) return undefined;
        return { status, ...(faults.retryAfterSeconds !== undefined && { retryAfterSeconds: faults.retryAfterSeconds }) };
      },
      drawDrop(chunks) {
        if (faults.dropRatio === undefined) return faults.dropAfterChunks;
        if (Math.random() >= faults.dropRatio) return undefined;
        return faults.dropAfterChunks ?? Math.floor(Math.random() * Math.max(1, chunks));
      },
    };
    Promise.resolve(handler(req, res, ctx)).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: String(err) });
      else res.destroy();
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(initial.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    setFaults(f) { faults = { ...f }; },
    setOptions(o) { options = { models: o.models ?? options.models, tokens: o.tokens ?? options.tokens, tokenIntervalMs: o.tokenIntervalMs ?? options.tokenIntervalMs }; },
    close,
    [Symbol.asyncDispose]: close,
  };
}
