import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';

/** Error codes a 5xx may carry when it is routing's answer (the backends), not the ingress failing. */
export const ROUTING_5XX_CODES = new Set(['backend_error', 'backend_unavailable', 'no_backend', 'timeout']);

/** Whether `body` is OpenAI's error shape: `{"error":{"message","type","param","code"}}`. */
export function isOpenAIError(body: string | Buffer): boolean {
  let parsed: unknown;
  try { parsed = JSON.parse(body.toString()); } catch { return false; }
  const e = (parsed as { error?: Record<string, unknown> } | null)?.error;
  if (!e || typeof e !== 'object') return false;
  const strOrNull = (v: unknown): boolean => v === null || typeof v === 'string';
  return typeof e['message'] === 'string' && typeof e['type'] === 'string' && 'param' in e && strOrNull(e['param']) && 'code' in e && strOrNull(e['code']);
}

export function errorCodeOf(body: string | Buffer): string | undefined {
  try { return (JSON.parse(body.toString()) as { error?: { code?: unknown } }).error?.code as string | undefined; } catch { return undefined; }
}

/** Resident memory of a process in bytes (VmRSS in /proc/<pid>/status). */
export function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

export interface TimedEvent {
  /** ms since the request was sent. */
  at: number;
  /** The SSE event's text (`data: …` or `: keepalive`). */
  text: string;
}

export interface TimedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** SSE events, each with the time it arrived. */
  events: TimedEvent[];
}

export interface TimedRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** HTTPS: trust this CA (PEM) and connect to 127.0.0.1 with SNI `servername`. */
  ca?: string;
  servername?: string;
  agent?: Agent | false;
  /** Called for each SSE event as it arrives; returning true destroys the request (a client that goes away). */
  onEvent?: (event: TimedEvent) => boolean | void;
  timeoutMs?: number;
}

/** One HTTP(S) request; an SSE answer is split into events, each stamped with its arrival time. */
export function timedRequest(url: string, options: TimedRequestOptions = {}): Promise<TimedResponse> {
  const u = new URL(url);
  const started = performance.now();
  const https = u.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)({
      host: '127.0.0.1', port: u.port, path: `${u.pathname}${u.search}`, method: options.method ?? 'GET',
      // The URL's host (e.g. localhost) in the Host header, whatever address the socket connects to.
      headers: { host: u.host, ...(options.body !== undefined && { 'content-length': String(Buffer.byteLength(options.body)) }), ...options.headers },
      ...(options.agent !== undefined && { agent: options.agent }),
      ...(https && { ca: options.ca, servername: options.servername ?? u.hostname, rejectUnauthorized: true }),
      signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
    }, (res) => {
      let body = '';
      let pending = '';
      const events: TimedEvent[] = [];
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        const at = performance.now() - started;
        body += text;
        pending += text;
        let end: number;
        while ((end = pending.indexOf('\n\n')) >= 0) {
          const event = { at, text: pending.slice(0, end) };
          pending = pending.slice(end + 2);
          events.push(event);
          if (options.onEvent?.(event)) {
            req.destroy();
            resolve({ status: res.statusCode!, headers: res.headers, body, events });
            return;
          }
        }
      });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, events }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** One HTTP response as read off the wire. */
export interface RawResponse {
  status: number;
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
}

export interface RawOutcome {
  responses: RawResponse[];
  /** The server closed the connection. */
  closed: boolean;
  /** Still no complete answer when the deadline came (the request may be held open on purpose). */
  timedOut: boolean;
  /** Bytes that did not parse as an HTTP response. */
  garbage?: string;
  error?: string;
}

export interface RawExchangeOptions {
  port: number;
  host?: string;
  /** Source address (any 127.x.y.z): spreads per-address rate limits over many "clients". */
  localAddress?: string;
  /** What to write: one buffer, or several written one after another. */
  parts: Buffer[];
  /** Pause between parts (ms); 0 writes them back to back (still separate writes). */
  partDelayMs?: number;
  deadlineMs: number;
  /** How many complete responses end the exchange (pipelined requests); default 1. */
  responses?: number;
  /** The request was a HEAD: the response has no body whatever its headers say. */
  head?: boolean;
}

/** Writes raw bytes to the server and reads what comes back, without any HTTP client in between. */
export function rawExchange(options: RawExchangeOptions): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const socket = connect({ port: options.port, host: options.host ?? '127.0.0.1', ...(options.localAddress && { localAddress: options.localAddress }) });
    let received = Buffer.alloc(0);
    let done = false;
    let closed = false;
    let error: string | undefined;
    const finish = (timedOut: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const parsed = parseResponses(received, options.head ?? false);
      resolve({ responses: parsed.responses, closed, timedOut, ...(parsed.garbage && { garbage: parsed.garbage }), ...(error && { error }) });
    };
    const timer = setTimeout(() => finish(true), options.deadlineMs);
    socket.on('data', (b: Buffer) => {
      received = Buffer.concat([received, b]);
      const parsed = parseResponses(received, options.head ?? false);
      if (parsed.responses.length >= (options.responses ?? 1)) finish(false);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
    socket.on('close', () => { closed = true; finish(false); });
    socket.once('connect', () => {
      void (async () => {
        for (const [i, part] of options.parts.entries()) {
          if (done || socket.destroyed) return;
          if (i > 0 && options.partDelayMs) await new Promise((r) => setTimeout(r, options.partDelayMs));
          else if (i > 0) await new Promise((r) => setImmediate(r));
          if (!done && !socket.destroyed) socket.write(part);
        }
      })();
    });
  });
}

/**
 * Parses the complete HTTP/1.x responses at the start of `data` (1xx interim responses are left
 * out); a body is delimited by content-length, chunked encoding or, lacking both, the end of data.
 */
export function parseResponses(data: Buffer, head: boolean): { responses: RawResponse[]; garbage?: string } {
  const responses: RawResponse[] = [];
  let at = 0;
  while (at < data.length) {
    const headEnd = data.indexOf('\r\n\r\n', at);
    if (headEnd < 0) break;
    const lines = data.subarray(at, headEnd).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
    if (!m) return { responses, garbage: data.subarray(at, at + 200).toString('latin1') };
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    let bodyStart = headEnd + 4;
    if (status < 200) { at = bodyStart; continue; }
    if (head || status === 204 || status === 304) { responses.push({ status, headers, body: Buffer.alloc(0) }); at = bodyStart; continue; }
    if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
      const chunks: Buffer[] = [];
      let complete = false;
      while (true) {
        const lineEnd = data.indexOf('\r\n', bodyStart);
        if (lineEnd < 0) break;
        const size = parseInt(data.subarray(bodyStart, lineEnd).toString('latin1'), 16);
        if (Number.isNaN(size)) return { responses, garbage: 'bad chunk size' };
        if (size === 0) {
          // The last chunk, then trailers (usually none) up to an empty line.
          const trailerEnd = data.indexOf('\r\n\r\n', lineEnd);
          if (trailerEnd < 0) break;
          bodyStart = trailerEnd + 4;
          complete = true;
          break;
        }
        if (data.length < lineEnd + 2 + size + 2) break;
        chunks.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        bodyStart = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
      responses.push({ status, headers, body: Buffer.concat(chunks) });
      at = bodyStart;
      continue;
    }
    if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (data.length < bodyStart + length) break;
      responses.push({ status, headers, body: data.subarray(bodyStart, bodyStart + length) });
      at = bodyStart + length;
      continue;
    }
    // Delimited by the end of the connection: complete only once it closed (the caller decides).
    responses.push({ status, headers, body: data.subarray(bodyStart) });
    at = data.length;
  }
  return { responses };
}

/** An HTTP/1.1 request as bytes: a body gets a content-length unless headers say otherwise. */
export function httpBytes(method: string, path: string, headers: [string, string][], body?: Buffer, version = 'HTTP/1.1'): Buffer {
  const hasLength = headers.some(([k]) => /^(content-length|transfer-encoding)$/i.test(k));
  const all: [string, string][] = [['Host', '127.0.0.1'], ...headers];
  if (body && !hasLength) all.push(['Content-Length', String(body.length)]);
  const head = `${method} ${path} ${version}\r\n${all.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body ?? Buffer.alloc(0)]);
}
