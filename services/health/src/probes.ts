import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { HealthDetail, ProbeOutcome } from '@homelab/bus';
import { redactText, snippet } from './redact.ts';

/*
 * The probes. Each one runs under its own deadline (connect, TLS, redirects and body included),
 * never throws, and turns every fault (refused, reset, garbage, TLS error, redirect loop, huge
 * body, timeout) into a result with a readable reason. Probes open a fresh connection each time
 * (no keep-alive), so a result says whether the service accepts connections now.
 */

export interface ProbeResult {
  outcome: ProbeOutcome;
  latencyMs: number | null;
  error: string | null;
  detail?: HealthDetail;
}

/** `{ json: 'status', equals: 'OK' }`, `{ json: 'data.version', exists: true }`, `{ contains: 'Healthy' }`. */
export type BodyCondition =
  | { json: string; equals?: string | number | boolean | null; exists?: boolean }
  | { contains: string };

export interface HttpProbeSpec {
  type: 'http';
  url: string;
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  /** Codes (`200`) or classes (`'2xx'`) that count as up. */
  expectStatus: ReadonlyArray<number | string>;
  /** Codes that mean "alive, but not right" (an API token rejected): degraded, not down. */
  degradedStatus?: readonly number[];
  body: readonly BodyCondition[];
  /** detail name → JSON path to copy into the result's detail (`version: 'data.version'`). */
  extract?: Record<string, string>;
  insecureTls: boolean;
  maxRedirects: number;
}

export interface TcpProbeSpec {
  type: 'tcp';
  host: string;
  port: number;
  /** The server must send this first (an SSH server's `SSH-2.0-…`). */
  expectBanner?: string;
}

export interface TlsProbeSpec {
  type: 'tls';
  host: string;
  port: number;
  insecureTls: boolean;
}

/** `GET /api/version` (up) plus `GET /api/ps` (the models loaded now, in detail). */
export interface OllamaProbeSpec {
  type: 'ollama';
  baseUrl: string;
}

/** `GET /system_stats` (up: ComfyUI's version; VRAM in detail) plus `GET /queue` (prompts running and waiting). */
export interface ComfyuiProbeSpec {
  type: 'comfyui';
  baseUrl: string;
}

/** `GET /api/v2/app/version`, logging in first when credentials are configured. */
export interface QbittorrentProbeSpec {
  type: 'qbittorrent';
  baseUrl: string;
  username?: string;
  password?: string;
}

export type ProbeSpec = HttpProbeSpec | TcpProbeSpec | TlsProbeSpec | OllamaProbeSpec | ComfyuiProbeSpec | QbittorrentProbeSpec;

export interface ProbeOptions {
  timeoutMs: number;
  /** A successful probe slower than this is degraded. */
  degradedLatencyMs: number;
  maxBodyBytes: number;
  /** A TLS certificate expiring within this many days is degraded (0: never). */
  certExpiryWarnDays: number;
  /** Strings removed from every error text (the target's API key, password…). */
  secrets?: readonly string[];
  /** State a probe keeps between runs of one target (qBittorrent's session). */
  memory?: ProbeMemory;
}

export interface ProbeMemory {
  cookie?: string;
  loginFailedAt?: number;
}

const USER_AGENT = 'homelab-health/0.1';
/** After a refused login, qBittorrent is not asked again for this long: repeated failures get the prober's IP banned. */
export const QBT_LOGIN_BACKOFF_MS = 10 * 60_000;

/** Runs one probe. Never throws. */
export async function runProbe(spec: ProbeSpec, options: ProbeOptions): Promise<ProbeResult> {
  const started = performance.now();
  const deadline = new Deadline(options.timeoutMs);
  let result: ProbeResult;
  try {
    switch (spec.type) {
      case 'http': result = (await httpCheck(spec, options, deadline)).result; break;
      case 'tcp': result = await tcpCheck(spec, deadline); break;
      case 'tls': result = await tlsCheck(spec, options, deadline); break;
      case 'ollama': result = await ollamaCheck(spec, options, deadline); break;
      case 'comfyui': result = await comfyuiCheck(spec, options, deadline); break;
      case 'qbittorrent': result = await qbittorrentCheck(spec, options, deadline); break;
    }
  } catch (err) {
    result = { outcome: 'fail', latencyMs: null, error: describeError(err, options.timeoutMs) };
  } finally {
    deadline.clear();
  }
  if (result.latencyMs === null && result.outcome !== 'fail') result.latencyMs = round(performance.now() - started);
  if (result.outcome === 'ok' && result.latencyMs !== null && result.latencyMs > options.degradedLatencyMs) {
    result = { ...result, outcome: 'degraded', error: `slow: ${Math.round(result.latencyMs)} ms (over ${options.degradedLatencyMs} ms)` };
  }
  if (result.error) result.error = redactText(result.error, options.secrets);
  return result;
}

class ProbeTimeout extends Error {
  constructor(ms: number) {
    super(`timeout after ${ms} ms`);
    this.name = 'ProbeTimeout';
  }
}

/** One timer per probe; whatever is open registers to be destroyed when it fires. */
class Deadline {
  readonly #timer: NodeJS.Timeout;
  readonly #ms: number;
  readonly #onExpire = new Set<(err: Error) => void>();
  expired = false;
  constructor(ms: number) {
    this.#ms = ms;
    this.#timer = setTimeout(() => {
      this.expired = true;
      const err = new ProbeTimeout(ms);
      for (const f of this.#onExpire) f(err);
    }, ms);
  }
  /** Calls `f` on expiry (at once if already expired); returns the unregister function. */
  watch(f: (err: Error) => void): () => void {
    if (this.expired) { f(new ProbeTimeout(this.#ms)); return () => {}; }
    this.#onExpire.add(f);
    return () => this.#onExpire.delete(f);
  }
  clear(): void {
    clearTimeout(this.#timer);
    this.#onExpire.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP

interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer | null;
  /** The body passed maxBodyBytes; reading stopped there. */
  tooLarge: boolean;
}

interface RequestOptions {
  method: string;
  headers: Record<string, string>;
  insecureTls: boolean;
  readBody: boolean;
  maxBodyBytes: number;
  body?: string;
}

function httpRequest(url: URL, o: RequestOptions, deadline: Deadline): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const mod = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, accept: '*/*', ...o.headers, connection: 'close' };
    if (o.body !== undefined) headers['content-length'] = String(Buffer.byteLength(o.body));
    let req: http.ClientRequest;
    try {
      req = mod.request(url, { method: o.method, headers, agent: false, ...(url.protocol === 'https:' && { rejectUnauthorized: !o.insecureTls }) });
    } catch (err) {
      reject(err);
      return;
    }
    const unwatch = deadline.watch((err) => { req.destroy(err); fail(err); });
    const finish = (r: HttpResponse): void => {
      if (settled) return;
      settled = true;
      unwatch();
      resolve(r);
    };
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      unwatch();
      req.destroy();
      reject(err);
    };
    req.on('error', fail);
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (!o.readBody || o.method === 'HEAD') {
        finish({ status, headers: res.headers, body: null, tooLarge: false });
        res.destroy();
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (settled) return;
        size += chunk.length;
        if (size > o.maxBodyBytes) {
          chunks.push(chunk.subarray(0, chunk.length - (size - o.maxBodyBytes)));
          finish({ status, headers: res.headers, body: Buffer.concat(chunks), tooLarge: true });
          res.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => finish({ status, headers: res.headers, body: Buffer.concat(chunks), tooLarge: false }));
      res.on('error', fail);
      res.on('close', () => { if (!settled) fail(Object.assign(new Error('connection closed before the body ended'), { code: 'ECONNRESET' })); });
    });
    req.end(o.body);
  });
}

function statusMatches(expect: ReadonlyArray<number | string>, status: number): boolean {
  return expect.some((e) => (typeof e === 'number' ? e === status : /^[1-5]xx$/.test(e) && Math.floor(status / 100) === Number(e[0])));
}

/** Reads `a.b.0.c` from parsed JSON; undefined when any step is missing. */
export function jsonPath(value: unknown, path: string): unknown {
  let current = value;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = Array.isArray(current) ? current[Number(part)] : (current as Record<string, unknown>)[part];
  }
  return current;
}

/** Checks body conditions; returns the first failure's reason, or null when all hold. */
export function checkBody(conditions: readonly BodyCondition[], text: string): { error: string | null; json?: unknown } {
  let parsed: unknown;
  let parsedOk: boolean | undefined;
  const json = (): boolean => {
    if (parsedOk === undefined) {
      try { parsed = JSON.parse(text); parsedOk = true; } catch { parsedOk = false; }
    }
    return parsedOk;
  };
  for (const c of conditions) {
    if ('contains' in c) {
      if (!text.includes(c.contains)) return { error: `body does not contain ${JSON.stringify(c.contains)} (got "${snippet(text, 60)}")` };
      continue;
    }
    if (!json()) return { error: `body is not JSON (got "${snippet(text, 60)}")` };
    const value = jsonPath(parsed, c.json);
    if (c.exists === false) {
      if (value !== undefined) return { error: `body: field '${c.json}' should be absent` };
      continue;
    }
    if (value === undefined) return { error: `body: no field '${c.json}'` };
    if ('equals' in c && c.equals !== undefined) {
      const same = value === c.equals || (value !== null && typeof value !== 'object' && c.equals !== null && String(value) === String(c.equals));
      if (!same) return { error: `body: '${c.json}' is ${snippet(JSON.stringify(value) ?? 'undefined', 40)}, expected ${JSON.stringify(c.equals)}` };
    }
  }
  return { error: null, ...(parsedOk && { json: parsed }) };
}

function detailValue(v: unknown): string | number | boolean | undefined {
  if (typeof v === 'string') return snippet(v, 64);
  if (typeof v === 'number' || typeof v === 'boolean') return v;
  return undefined;
}

async function httpCheck(spec: HttpProbeSpec, options: ProbeOptions, deadline: Deadline): Promise<{ result: ProbeResult; json?: unknown }> {
  const started = performance.now();
  const needBody = spec.body.length > 0 || (spec.extract !== undefined && Object.keys(spec.extract).length > 0);
  let url = new URL(spec.url);
  let res: HttpResponse;
  for (let hops = 0; ; hops++) {
    // The body is read when conditions need it, or to quote an error status: never more than maxBodyBytes.
    res = await httpRequest(url, { method: spec.method, headers: spec.headers, insecureTls: spec.insecureTls, readBody: true, maxBodyBytes: needBody ? options.maxBodyBytes : 512 }, deadline);
    const location = res.headers.location;
    if (res.status >= 300 && res.status < 400 && location && spec.maxRedirects > 0) {
      let next: URL;
      try { next = new URL(location, url); } catch { break; }
      // Only redirects within the same host are followed (http → https, a path); others are the answer.
      if (next.hostname !== url.hostname || !/^https?:$/.test(next.protocol)) break;
      if (hops >= spec.maxRedirects) return { result: fail(`too many redirects (more than ${spec.maxRedirects}; last to ${next.pathname})`, started) };
      url = next;
      continue;
    }
    break;
  }
  const latencyMs = round(performance.now() - started);
  const text = res.body ? res.body.toString('utf8') : '';
  const quote = text.trim() ? `: ${snippet(text, 80)}` : '';
  if (spec.degradedStatus?.includes(res.status)) {
    return { result: { outcome: 'degraded', latencyMs, error: `HTTP ${res.status}${res.status === 401 || res.status === 403 ? ' (credentials rejected)' : ''}` } };
  }
  if (!statusMatches(spec.expectStatus, res.status)) {
    return { result: { outcome: 'fail', latencyMs, error: `HTTP ${res.status}${res.status >= 300 && res.status < 400 && res.headers.location ? ' (redirect not followed)' : quote}` } };
  }
  if (!needBody) return { result: { outcome: 'ok', latencyMs, error: null } };
  if (res.tooLarge) return { result: { outcome: 'fail', latencyMs, error: `body larger than ${options.maxBodyBytes} bytes` } };
  const checked = checkBody(spec.body, text);
  if (checked.error) return { result: { outcome: 'fail', latencyMs, error: checked.error } };
  let parsed = checked.json;
  const detail: HealthDetail = {};
  for (const [name, path] of Object.entries(spec.extract ?? {})) {
    if (path === '') { const v = detailValue(text.trim()); if (v !== undefined) detail[name] = v; continue; }
    if (parsed === undefined) { try { parsed = JSON.parse(text); } catch { continue; } }
    const v = detailValue(jsonPath(parsed, path));
    if (v !== undefined) detail[name] = v;
  }
  return { result: { outcome: 'ok', latencyMs, error: null, ...(Object.keys(detail).length > 0 && { detail }) }, json: parsed };
}

function fail(error: string, started?: number): ProbeResult {
  return { outcome: 'fail', latencyMs: started === undefined ? null : round(performance.now() - started), error };
}

// ---------------------------------------------------------------------------------------------
// TCP and TLS

function tcpCheck(spec: TcpProbeSpec, deadline: Deadline): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    let settled = false;
    let connectedMs: number | null = null;
    let banner = '';
    const socket = net.connect({ host: spec.host, port: spec.port });
    const done = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      unwatch();
      socket.destroy();
      resolve(r);
    };
    const unwatch = deadline.watch((err) => done({ outcome: 'fail', latencyMs: null, error: connectedMs === null ? err.message : `${err.message} waiting for the banner` }));
    socket.once('connect', () => {
      connectedMs = round(performance.now() - started);
      if (!spec.expectBanner) done({ outcome: 'ok', latencyMs: connectedMs, error: null });
    });
    socket.on('data', (chunk: Buffer) => {
      if (!spec.expectBanner) return;
      banner += chunk.toString('latin1');
      if (banner.length < spec.expectBanner.length && !banner.includes('\n')) return;
      const line = snippet(banner.split(/\r?\n/)[0] ?? '', 64);
      if (banner.startsWith(spec.expectBanner)) done({ outcome: 'ok', latencyMs: round(performance.now() - started), error: null, detail: { banner: line } });
      else done({ outcome: 'fail', latencyMs: round(performance.now() - started), error: `unexpected banner "${line}" (expected ${JSON.stringify(spec.expectBanner)}…)` });
    });
    socket.on('error', (err) => done({ outcome: 'fail', latencyMs: null, error: describeError(err) }));
    socket.on('close', () => done({ outcome: 'fail', latencyMs: null, error: 'connection closed before the banner' }));
  });
}

function tlsCheck(spec: TlsProbeSpec, options: ProbeOptions, deadline: Deadline): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    let settled = false;
    const socket = tls.connect({ host: spec.host, port: spec.port, rejectUnauthorized: !spec.insecureTls, ...(net.isIP(spec.host) === 0 && { servername: spec.host }) });
    const done = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      unwatch();
      socket.destroy();
      resolve(r);
    };
    const unwatch = deadline.watch((err) => done({ outcome: 'fail', latencyMs: null, error: err.message }));
    socket.once('secureConnect', () => {
      const latencyMs = round(performance.now() - started);
      const cert = socket.getPeerCertificate();
      const detail: HealthDetail = { certTrusted: socket.authorized };
      const protocol = socket.getProtocol();
      if (protocol) detail['tlsProtocol'] = protocol;
      if (cert?.subject?.CN) detail['certSubject'] = snippet(String(cert.subject.CN), 64);
      let warning: string | null = null;
      if (cert?.valid_to) {
        const expires = Date.parse(cert.valid_to);
        if (!Number.isNaN(expires)) {
          const daysLeft = Math.floor((expires - Date.now()) / 86_400_000);
          detail['certExpires'] = new Date(expires).toISOString();
          detail['certDaysLeft'] = daysLeft;
          if (expires < Date.now()) warning = `certificate expired on ${new Date(expires).toISOString().slice(0, 10)}`;
          else if (options.certExpiryWarnDays > 0 && daysLeft < options.certExpiryWarnDays) warning = `certificate expires in ${daysLeft} days`;
        }
      }
      done({ outcome: warning ? 'degraded' : 'ok', latencyMs, error: warning, detail });
    });
    socket.on('error', (err) => done({ outcome: 'fail', latencyMs: null, error: describeError(err) }));
    socket.on('close', () => done({ outcome: 'fail', latencyMs: null, error: 'connection closed during the TLS handshake' }));
  });
}

// ---------------------------------------------------------------------------------------------
// Built-in kinds that need more than one request

async function ollamaCheck(spec: OllamaProbeSpec, options: ProbeOptions, deadline: Deadline): Promise<ProbeResult> {
  const base = spec.baseUrl.replace(/\/$/, '');
  const common = { type: 'http', method: 'GET', headers: {}, expectStatus: [200], insecureTls: false, maxRedirects: 0 } as const;
  // Both at once, under the one deadline.
  const [version, ps] = await Promise.allSettled([
    httpCheck({ ...common, url: `${base}/api/version`, body: [{ json: 'version', exists: true }], extract: { version: 'version' } }, options, deadline),
    httpCheck({ ...common, url: `${base}/api/ps`, body: [{ json: 'models', exists: true }] }, options, deadline),
  ]);
  if (version.status === 'rejected') return fail(describeError(version.reason, options.timeoutMs));
  const result = version.value.result;
  if (result.outcome === 'fail') return result;
  const detail: HealthDetail = { ...result.detail };
  if (ps.status === 'rejected' || ps.value.result.outcome === 'fail') {
    const why = ps.status === 'rejected' ? describeError(ps.reason, options.timeoutMs) : ps.value.result.error;
    return { outcome: 'degraded', latencyMs: result.latencyMs, error: `api/ps: ${why}`, detail };
  }
  const models = jsonPath(ps.value.json, 'models');
  if (Array.isArray(models)) {
    const names = models.map((m) => String((m as { name?: unknown })?.name ?? '?'));
    detail['loadedModels'] = names.length;
    if (names.length > 0) detail['loaded'] = snippet(names.slice(0, 8).join(','), 200);
    const vram = models.reduce((sum: number, m) => sum + (Number((m as { size_vram?: unknown })?.size_vram) || 0), 0);
    if (vram > 0) detail['vramBytes'] = vram;
  }
  return { ...result, detail };
}

async function comfyuiCheck(spec: ComfyuiProbeSpec, options: ProbeOptions, deadline: Deadline): Promise<ProbeResult> {
  const base = spec.baseUrl.replace(/\/$/, '');
  const common = { type: 'http', method: 'GET', headers: {}, expectStatus: [200], insecureTls: false, maxRedirects: 0 } as const;
  const [stats, queue] = await Promise.allSettled([
    httpCheck({ ...common, url: `${base}/system_stats`, body: [{ json: 'system.comfyui_version', exists: true }], extract: { version: 'system.comfyui_version' } }, options, deadline),
    httpCheck({ ...common, url: `${base}/queue`, body: [{ json: 'queue_running', exists: true }] }, options, deadline),
  ]);
  if (stats.status === 'rejected') return fail(describeError(stats.reason, options.timeoutMs));
  const result = stats.value.result;
  if (result.outcome === 'fail') return result;
  const detail: HealthDetail = { ...result.detail };
  const device = (jsonPath(stats.value.json, 'devices') as { name?: unknown; vram_total?: unknown; vram_free?: unknown }[] | undefined)?.[0];
  if (device) {
    if (typeof device.name === 'string') detail['device'] = snippet(device.name, 80);
    if (typeof device.vram_total === 'number') detail['vramTotalBytes'] = device.vram_total;
    if (typeof device.vram_free === 'number') detail['vramFreeBytes'] = device.vram_free;
  }
  if (queue.status === 'rejected' || queue.value.result.outcome === 'fail') {
    const why = queue.status === 'rejected' ? describeError(queue.reason, options.timeoutMs) : queue.value.result.error;
    return { outcome: 'degraded', latencyMs: result.latencyMs, error: `queue: ${why}`, detail };
  }
  const running = jsonPath(queue.value.json, 'queue_running');
  const pending = jsonPath(queue.value.json, 'queue_pending');
  detail['queueRunning'] = Array.isArray(running) ? running.length : 0;
  detail['queuePending'] = Array.isArray(pending) ? pending.length : 0;
  return { ...result, detail };
}

async function qbittorrentCheck(spec: QbittorrentProbeSpec, options: ProbeOptions, deadline: Deadline): Promise<ProbeResult> {
  const started = performance.now();
  const base = new URL(spec.baseUrl.replace(/\/$/, '') + '/');
  const versionUrl = new URL('api/v2/app/version', base);
  const memory = options.memory ?? {};
  const get = (cookie?: string): Promise<HttpResponse> => httpRequest(versionUrl, {
    method: 'GET', headers: cookie ? { cookie } : {}, insecureTls: false, readBody: true, maxBodyBytes: 256,
  }, deadline);
  const ok = (res: HttpResponse): ProbeResult => ({
    outcome: 'ok', latencyMs: round(performance.now() - started), error: null, detail: { version: snippet(res.body?.toString('utf8') ?? '', 32) },
  });
  const unexpected = (res: HttpResponse): ProbeResult => fail(`HTTP ${res.status}${res.body?.length ? `: ${snippet(res.body, 60)}` : ''}`, started);

  if (!spec.username) {
    // Without credentials the WebUI answers 403 (unless it bypasses auth for this address): alive either way.
    const res = await get();
    if (res.status === 200) return ok(res);
    if (res.status === 403) return { outcome: 'ok', latencyMs: round(performance.now() - started), error: null, detail: { auth: 'required' } };
    return unexpected(res);
  }
  if (memory.cookie) {
    const res = await get(memory.cookie);
    if (res.status === 200) return ok(res);
    if (res.status !== 403) return unexpected(res);
    memory.cookie = undefined; // the session expired: log in again
  }
  if (memory.loginFailedAt !== undefined && Date.now() - memory.loginFailedAt < QBT_LOGIN_BACKOFF_MS) {
    const res = await get();
    if (res.status !== 403 && res.status !== 200) return unexpected(res);
    return { outcome: 'degraded', latencyMs: round(performance.now() - started), error: 'login refused (check the username and password); not retried for 10 minutes' };
  }
  const form = new URLSearchParams({ username: spec.username, password: spec.password ?? '' }).toString();
  const login = await httpRequest(new URL('api/v2/auth/login', base), {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, insecureTls: false, readBody: true, maxBodyBytes: 256, body: form,
  }, deadline);
  const text = login.body?.toString('utf8').trim() ?? '';
  const setCookie = [login.headers['set-cookie'] ?? []].flat().map((c) => c.split(';')[0] ?? '').find((c) => c.startsWith('SID='));
  if (login.status === 200 && text === 'Ok.' && setCookie) {
    memory.cookie = setCookie;
    memory.loginFailedAt = undefined;
    const res = await get(setCookie);
    return res.status === 200 ? ok(res) : unexpected(res);
  }
  if (login.status === 200 || login.status === 401 || login.status === 403) {
    memory.loginFailedAt = Date.now();
    const why = login.status === 403 ? 'login forbidden: too many failed logins, the WebUI banned this address' : 'login refused (check the username and password)';
    return { outcome: 'degraded', latencyMs: round(performance.now() - started), error: why };
  }
  return unexpected(login);
}

// ---------------------------------------------------------------------------------------------

/** A readable reason for a network or protocol error. */
export function describeError(err: unknown, timeoutMs?: number): string {
  if (err instanceof ProbeTimeout) return err.message;
  const e = err as NodeJS.ErrnoException & { reason?: string; hostname?: string };
  const code = e?.code ?? '';
  const msg = String(e?.message ?? err);
  switch (code) {
    case 'ECONNREFUSED': return 'connection refused';
    case 'ECONNRESET': return msg === 'socket hang up' ? 'connection closed without a response' : /before the body/.test(msg) ? msg : 'connection reset';
    case 'EPIPE': return 'connection reset';
    case 'ETIMEDOUT': return timeoutMs ? `timeout after ${timeoutMs} ms` : 'connect timed out';
    case 'ENOTFOUND': case 'EAI_AGAIN': case 'EAI_NONAME': return `DNS: cannot resolve ${e.hostname ?? 'the host'}`;
    case 'EHOSTUNREACH': return 'host unreachable';
    case 'ENETUNREACH': return 'network unreachable';
    case 'ERR_INVALID_URL': return 'invalid URL';
    default: break;
  }
  if (code.startsWith('HPE_')) return `invalid HTTP response (${code.slice(4).toLowerCase().replace(/_/g, ' ')})`;
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|DEPTH_ZERO/.test(code) || /SSL routines|wrong version number|tls/i.test(msg)) {
    const hint = /SELF_SIGNED|DEPTH_ZERO|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code) ? ' (set insecureTls for a self-signed certificate)' : '';
    return `TLS: ${snippet(e.reason ?? msg, 120)}${hint}`;
  }
  return snippet(msg, 160) || 'probe failed';
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
