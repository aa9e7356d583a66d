import { Type, type Static } from '@sinclair/typebox';
import type { MediaTorrent, MediaTransferSnapshot } from '@homelab/bus';
import { MediaError } from '../errors.ts';
import { HttpClient, checkStatus, parseJsonBody, shape, type HttpResponse } from '../http.ts';
import { downloadKey, nowIso, type DownloadObservation, type MediaTarget, type TargetLimits, type TargetSpec } from './types.ts';

/*
 * qBittorrent's WebUI API v2 (4.1+; tested against Debian 12's 4.5.2).
 * - Login: `POST /api/v2/auth/login` → `Ok.` and a `SID` cookie; `Fails.` (401 from 5.2) for a wrong
 *   password; 403 once qBittorrent banned the IP after too many failures. The poller logs in only
 *   when it has no SID or the SID expired (a 403 on an API call), backs off exponentially after a
 *   failure, and after `maxLoginFailures` in a row (or a ban) waits `loginRetryMs` before one more
 *   try: a wrong password never loops into a ban.
 * - Torrents and transfer state from `sync/maindata` deltas (`rid`), merged here. The `rid` only
 *   means something within one SID session, so it is not kept across restarts: a new session starts
 *   with a full update anyway.
 */

export interface QbittorrentOptions {
  maxLoginFailures: number;
  loginRetryMs: number;
}

const Open = { additionalProperties: true } as const;
const TorrentFields = Type.Object({
  name: Type.Optional(Type.String()), state: Type.Optional(Type.String()), progress: Type.Optional(Type.Number()),
  dlspeed: Type.Optional(Type.Number()), upspeed: Type.Optional(Type.Number()), size: Type.Optional(Type.Number()), amount_left: Type.Optional(Type.Number()),
  eta: Type.Optional(Type.Number()), category: Type.Optional(Type.String()), tags: Type.Optional(Type.String()), save_path: Type.Optional(Type.String()),
  ratio: Type.Optional(Type.Number()), added_on: Type.Optional(Type.Number()), completion_on: Type.Optional(Type.Number()),
  num_seeds: Type.Optional(Type.Number()), num_leechs: Type.Optional(Type.Number()),
}, Open);
export type QbTorrent = Static<typeof TorrentFields>;
const ServerState = Type.Object({
  connection_status: Type.Optional(Type.String()), dht_nodes: Type.Optional(Type.Number()), dl_info_data: Type.Optional(Type.Number()),
  dl_info_speed: Type.Optional(Type.Number()), dl_rate_limit: Type.Optional(Type.Number()), up_info_data: Type.Optional(Type.Number()),
  up_info_speed: Type.Optional(Type.Number()), up_rate_limit: Type.Optional(Type.Number()), free_space_on_disk: Type.Optional(Type.Number()),
}, Open);
export type QbServerState = Static<typeof ServerState>;
const MainDataSchema = Type.Object({
  rid: Type.Integer(),
  full_update: Type.Optional(Type.Boolean()),
  torrents: Type.Optional(Type.Record(Type.String(), TorrentFields)),
  torrents_removed: Type.Optional(Type.Array(Type.String())),
  server_state: Type.Optional(ServerState),
}, Open);
const MainDataShape = shape(MainDataSchema);
type MainData = Static<typeof MainDataSchema>;

const UP_STATES = new Set(['uploading', 'stalledUP', 'pausedUP', 'stoppedUP', 'queuedUP', 'forcedUP', 'checkingUP']);
const PAUSED = new Set(['pausedUP', 'pausedDL', 'stoppedUP', 'stoppedDL']);
const SEEDING = new Set(['uploading', 'stalledUP', 'queuedUP', 'forcedUP']);

export function torrentPhase(t: QbTorrent): MediaTorrent['phase'] {
  const state = t.state ?? 'unknown';
  if (state === 'error' || state === 'missingFiles') return 'failed';
  if ((t.progress ?? 0) >= 1 || UP_STATES.has(state)) return 'completed';
  return 'downloading';
}

/** The merged state of `sync/maindata` deltas. */
export class MainDataState {
  rid = 0;
  readonly torrents = new Map<string, QbTorrent>();
  server: QbServerState = {};

  apply(data: MainData): void {
    if (data.full_update) {
      this.torrents.clear();
      this.server = {};
    }
    for (const [hash, fields] of Object.entries(data.torrents ?? {})) this.torrents.set(hash, { ...this.torrents.get(hash), ...fields });
    for (const hash of data.torrents_removed ?? []) this.torrents.delete(hash);
    if (data.server_state) this.server = { ...this.server, ...data.server_state };
    this.rid = data.rid;
  }

  reset(): void {
    this.rid = 0;
    this.torrents.clear();
    this.server = {};
  }
}

const epoch = (s: number | undefined): string | undefined => (s && s > 0 ? new Date(s * 1000).toISOString() : undefined);

export function toTorrent(hash: string, t: QbTorrent): MediaTorrent {
  const addedOn = epoch(t.added_on);
  const completionOn = epoch(t.completion_on);
  return {
    hash: hash.toLowerCase(), name: t.name ?? hash, state: t.state ?? 'unknown', phase: torrentPhase(t), progress: Math.min(1, Math.max(0, t.progress ?? 0)),
    size: t.size ?? 0, amountLeft: t.amount_left ?? 0, dlSpeed: t.dlspeed ?? 0, upSpeed: t.upspeed ?? 0, eta: t.eta ?? 8_640_000,
    category: t.category ?? '', tags: t.tags ?? '', savePath: t.save_path ?? '', ratio: Math.round((t.ratio ?? 0) * 1000) / 1000,
    ...(addedOn && { addedOn }), ...(completionOn && { completionOn }), numSeeds: t.num_seeds ?? 0, numLeechs: t.num_leechs ?? 0,
  };
}

/** Active first: downloading (most advanced first), then uploading, then the rest, newest first. */
function rank(t: MediaTorrent): number {
  if (t.phase === 'downloading' && !PAUSED.has(t.state)) return 0;
  if (t.upSpeed > 0) return 1;
  if (t.phase === 'failed') return 2;
  return 3;
}

export function createQbittorrentTarget(spec: TargetSpec, limits: TargetLimits, options: QbittorrentOptions): MediaTarget {
  if (!spec.username || spec.password === undefined) throw new MediaError('config', `${spec.name}: no username or password (QBITTORRENT_USERNAME, QBITTORRENT_PASSWORD)`);
  const session = new QbittorrentSession(spec, { username: spec.username, password: spec.password }, new LoginGate(options, spec.intervalMs));
  return {
    spec,
    async poll(signal) {
      const data = parseJsonBody(await session.get('api/v2/sync/maindata', signal, { rid: session.state.rid }), MainDataShape);
      session.state.apply(data);
      const version = await session.version(signal);
      const torrents = [...session.state.torrents].map(([hash, t]) => toTorrent(hash, t));
      const snapshot = transferSnapshot(spec.name, torrents, session.state.server, version, limits.snapshotMaxItems, nowIso());
      return { snapshots: [{ key: 'mediaTransfer', payload: snapshot }], downloads: { observations: torrentObservations(spec.name, torrents), complete: true } };
    },
  };
}

const LOGIN_ENDPOINT = '/api/v2/auth/login';

/**
 * When the next login may be tried. After a refused password the wait doubles from the poll
 * interval, and after `maxLoginFailures` (or a ban) it is `loginRetryMs`: a wrong password never
 * loops into qBittorrent's IP ban.
 */
export class LoginGate {
  readonly #options: QbittorrentOptions;
  readonly #intervalMs: number;
  #failures = 0;
  #nextLoginAt = 0;
  #lockReason: 'auth' | 'banned' = 'auth';

  constructor(options: QbittorrentOptions, intervalMs: number) {
    this.#options = options;
    this.#intervalMs = intervalMs;
  }

  /** Throws while logins are paused, saying why and until when. */
  check(now = Date.now()): void {
    if (now >= this.#nextLoginAt) return;
    const failures = this.#failures;
    throw new MediaError(this.#lockReason, this.#lockReason === 'banned'
      ? `qBittorrent banned this IP after failed logins; ${this.#waitMessage()}`
      : `login paused after ${failures} failed attempt${failures === 1 ? '' : 's'} (wrong username or password?); ${this.#waitMessage()}`, { endpoint: LOGIN_ENDPOINT });
  }

  succeeded(): void {
    this.#failures = 0;
    this.#nextLoginAt = 0;
  }

  banned(res: Pick<HttpResponse, 'endpoint'>, now = Date.now()): MediaError {
    this.#lockReason = 'banned';
    this.#nextLoginAt = now + this.#options.loginRetryMs;
    return new MediaError('banned', `/api/v2/auth/login: HTTP 403, qBittorrent banned this IP after too many failed logins; ${this.#waitMessage()}`, { endpoint: res.endpoint, status: 403 });
  }

  refused(res: Pick<HttpResponse, 'endpoint' | 'status'>, now = Date.now()): MediaError {
    const { maxLoginFailures, loginRetryMs } = this.#options;
    this.#failures++;
    this.#lockReason = 'auth';
    this.#nextLoginAt = now + (this.#failures >= maxLoginFailures ? loginRetryMs : Math.min(loginRetryMs, this.#intervalMs * 2 ** this.#failures));
    return new MediaError('auth', `/api/v2/auth/login: username or password refused (${this.#failures} of ${maxLoginFailures} attempts before pausing); ${this.#waitMessage()}`, { endpoint: res.endpoint, status: res.status });
  }

  #waitMessage(): string {
    return `next login attempt at ${new Date(this.#nextLoginAt).toISOString()}`;
  }
}


/** A WebUI session: the SID, and what only means something within it (the maindata `rid` and its merged state). */
class QbittorrentSession {
  readonly state = new MainDataState();
  readonly #credentials: { username: string; password: string };
  readonly #gate: LoginGate;
  readonly #http: HttpClient;
  #sid: string | undefined;
  #version: string | undefined;

  constructor(spec: TargetSpec, credentials: { username: string; password: string }, gate: LoginGate) {
    this.#credentials = credentials;
    this.#gate = gate;
    this.#http = new HttpClient({ baseUrl: spec.url, timeoutMs: spec.timeoutMs, maxBytes: spec.maxResponseBytes });
  }

  /** A GET with the session; logs in first when needed, and once more when the SID expired. */
  async get(path: string, signal: AbortSignal, query?: Record<string, string | number>): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      if (!this.#sid) await this.#login(signal);
      const res = await this.#http.send(path, { signal, headers: { cookie: `SID=${this.#sid}` }, ...(query && { query }) });
      if (res.status === 403 && attempt === 0) { this.#sid = undefined; continue; }
      if (res.status === 403) throw new MediaError('auth', `${res.endpoint}: HTTP 403 right after a successful login`, { endpoint: res.endpoint, status: 403 });
      checkStatus(res);
      return res;
    }
  }

  /** Asked once per session: an upgrade of qBittorrent restarts it, which ends the session. */
  async version(signal: AbortSignal): Promise<string | undefined> {
    if (!this.#version) this.#version = (await this.get('api/v2/app/version', signal)).text.trim().slice(0, 32) || undefined;
    return this.#version;
  }

  async #login(signal: AbortSignal): Promise<void> {
    this.#gate.check();
    const res = await this.#http.send('api/v2/auth/login', {
      method: 'POST', signal, body: new URLSearchParams(this.#credentials).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const body = res.text.trim();
    if (res.status === 200 && body === 'Ok.') {
      const sid = res.headers.getSetCookie().map((c) => /^SID=([^;]+)/.exec(c)?.[1]).find(Boolean);
      if (!sid) throw new MediaError('invalid_response', '/api/v2/auth/login: accepted but no SID cookie', { endpoint: res.endpoint, status: 200 });
      this.#sid = sid;
      this.#gate.succeeded();
      this.state.reset();
      this.#version = undefined;
      return;
    }
    if (res.status === 403) throw this.#gate.banned(res);
    // qBittorrent before 5.2 says `Fails.` with a 200; from 5.2, 401.
    if ((res.status === 200 && body === 'Fails.') || res.status === 401) throw this.#gate.refused(res);
    checkStatus(res);
    throw new MediaError('invalid_response', `/api/v2/auth/login: unexpected answer (HTTP ${res.status})`, { endpoint: res.endpoint, status: res.status });
  }
}

/** `media.transfer`: qBittorrent's totals, the torrents counted by state, and the first `maxItems`, active first. */
export function transferSnapshot(
  source: string, torrents: MediaTorrent[], s: QbServerState, version: string | undefined, maxItems: number, at: string,
): MediaTransferSnapshot {
  const count = (f: (t: MediaTorrent) => boolean): number => torrents.filter(f).length;
  return {
    source, kind: 'qbittorrent', at, ...(version && { version }),
    connectionStatus: s.connection_status ?? 'unknown', dlSpeed: s.dl_info_speed ?? 0, upSpeed: s.up_info_speed ?? 0,
    dlData: s.dl_info_data ?? 0, upData: s.up_info_data ?? 0, dlRateLimit: s.dl_rate_limit ?? 0, upRateLimit: s.up_rate_limit ?? 0,
    dhtNodes: s.dht_nodes ?? 0, ...(s.free_space_on_disk !== undefined && s.free_space_on_disk >= 0 && { freeSpaceOnDisk: s.free_space_on_disk }),
    counts: {
      total: torrents.length,
      downloading: count((t) => t.phase === 'downloading' && !PAUSED.has(t.state) && !t.state.startsWith('checking')),
      seeding: count((t) => SEEDING.has(t.state)),
      paused: count((t) => PAUSED.has(t.state)),
      checking: count((t) => t.state.startsWith('checking')),
      errored: count((t) => t.phase === 'failed'),
    },
    truncated: torrents.length > maxItems,
    torrents: activeFirst(torrents).slice(0, maxItems),
  };
}

/** Active first (downloads the most advanced first), then the newest. */
function activeFirst(torrents: MediaTorrent[]): MediaTorrent[] {
  return [...torrents].sort((a, b) => rank(a) - rank(b) || (rank(a) === 0 ? b.progress - a.progress : 0) || (b.addedOn ?? '').localeCompare(a.addedOn ?? ''));
}

/** Every torrent, for the download tracker: the list is complete, so a torrent no longer in it was removed. */
export function torrentObservations(source: string, torrents: MediaTorrent[]): DownloadObservation[] {
  return torrents.map((t) => ({
    id: downloadKey(t.hash), rawId: t.hash, state: t.phase,
    info: {
      title: t.name, size: t.size, protocol: 'torrent', downloadClient: source,
      ...(t.phase === 'failed' && { reason: t.state === 'missingFiles' ? 'qBittorrent: files missing' : 'qBittorrent: torrent in error state' }),
    },
  }));
}
