import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson, sleep, type SimContext, type SimFaults } from './sim.ts';

/**
 * Faults of the media-node simulators (Sonarr, Radarr, Prowlarr, Jellyfin, Immich). They apply to
 * every API request (the unauthenticated ping endpoints included), in this order: delay, status,
 * then the body faults.
 */
export interface MediaSimFaults extends SimFaults {
  /** Answer after this long (a slow service); the client's timeout is what should fire. */
  delayMs?: number;
  /** Valid HTTP, JSON cut in the middle (`{"page":1,"pageS`). */
  truncateJson?: boolean;
  /** Announce the full length, send half the body, then close the connection. */
  dropBody?: boolean;
  /** An HTML page where JSON was expected (a reverse proxy's error page, or the web UI), status 200 unless `status` is set. */
  htmlPage?: boolean;
}

export const HTML_ERROR_PAGE = '<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n';

/**
 * Applies the current faults; returns true when the request was answered by a fault.
 * `errorBody` is the service's own error shape for a status fault.
 */
export async function applyMediaFaults(res: ServerResponse, ctx: SimContext, errorBody: (status: number) => unknown): Promise<boolean> {
  const faults = ctx.faults as MediaSimFaults;
  if (faults.delayMs) {
    await sleep(faults.delayMs, ctx.abortSignal);
    if (ctx.abortSignal.aborted) return true;
  }
  if (faults.htmlPage) {
    const status = faults.status ?? 200;
    res.writeHead(status, { 'content-type': 'text/html', 'content-length': Buffer.byteLength(HTML_ERROR_PAGE) });
    res.end(HTML_ERROR_PAGE);
    return true;
  }
  const fault = ctx.drawStatusFault();
  if (fault) {
    const body = errorBody(fault.status);
    const headers: Record<string, string> = fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {};
    if (body === undefined) {
      res.writeHead(fault.status, { 'content-length': '0', ...headers });
      res.end();
    } else sendJson(res, fault.status, body, headers);
    return true;
  }
  return false;
}

/** Writes a JSON answer, honouring the body faults. */
export function sendMediaJson(res: ServerResponse, ctx: SimContext, status: number, body: unknown): void {
  const faults = ctx.faults as MediaSimFaults;
  const text = JSON.stringify(body);
  if (faults.truncateJson) {
    const cut = text.slice(0, Math.max(1, Math.floor(text.length / 2)));
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(cut) });
    res.end(cut);
    return;
  }
  if (faults.dropBody) {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.write(text.slice(0, Math.floor(text.length / 2)));
    setTimeout(() => res.destroy(), 10);
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function requestUrl(req: IncomingMessage): URL {
  return new URL(req.url ?? '/', 'http://sim.invalid');
}

/** Paging query parameters as the *arr APIs read them (1-based page, default page size 10). */
export function paging(url: URL, defaultPageSize = 10): { page: number; pageSize: number } {
  const page = Math.max(1, Number(url.searchParams.get('page')) || 1);
  const pageSize = Math.max(1, Number(url.searchParams.get('pageSize')) || defaultPageSize);
  return { page, pageSize };
}

/** Deterministic pseudo-random hex (a torrent info hash, upper-case as the *arr APIs report it). */
export function fakeHash(seed: number | string): string {
  let h = 0x811c9dc5;
  const text = String(seed);
  let out = '';
  for (let round = 0; out.length < 40; round++) {
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i) ^ round, 0x01000193) >>> 0;
    out += h.toString(16).padStart(8, '0');
  }
  return out.slice(0, 40).toUpperCase();
}
