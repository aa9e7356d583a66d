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
type QbTorrent = Static<typeof TorrentFields>;
const ServerState = Type.Object({
  connection_status: Type.Optional(Type.String()), dht_nodes: Type.Optional(Type.Number()), dl_info_data: Type.Optional(Type.Number()),
  dl_info_speed: Type.Optional(Type.Number()), dl_rate_limit: Type.Optional(Type.Number()), up_info_data: Type.Optional(Type.Number()),
  up_info_speed: Type.Optional(Type.Number()), up_rate_limit: Type.Optional(Type.Number()), free_space_on_disk: Type.Optional(Type.Number()),
}, Open);
type QbServerState = Static<typeof ServerState>;
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

function toTorrent(hash: string, t: QbTorrent): MediaTorrent {
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
  const username = spec.username;
  const password = spec.password;
  const http = new HttpClient({ baseUrl: spec.url, timeoutMs: spec.timeoutMs, maxBytes: spec.maxResponseBytes });
  const state = new MainDataState();
  let sid: string | undefined;
  let version: string | undefined;
  let failures = 0;
  let nextLoginAt = 0;
  let lockReason: 'auth' | 'banned' = 'auth';

  const waitMessage = (): string => `next login attempt at ${new Date(nextLoginAt).toISOString()}`;

  const login = async (signal: AbortSignal): Promise<void> => {
    if (Date.now() < nextLoginAt) {
      throw new MediaError(lockReason, lockReason === 'banned'
        ? `qBittorrent banned this IP after failed logins; ${waitMessage()}`
        : `login paused after ${failures} failed attempt${failures === 1 ? '' : 's'} (wrong username or password?); ${waitMessage()}`, { endpoint: '/api/v2/auth/login' });
    }
    const res = await http.send('api/v2/auth/login', {
      method: 'POST', signal, body: new URLSearchParams({ username, password }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const body = res.text.trim();
    if (res.status === 200 && body === 'Ok.') {
      const cookie = res.headers.getSetCookie().map((c) => /^SID=([^;]+)/.exec(c)?.[1]).find(Boolean);
      if (!cookie) throw new MediaError('invalid_response', '/api/v2/auth/login: accepted but no SID cookie', { endpoint: res.endpoint, status: 200 });
      sid = cookie;
      failures = 0;
      nextLoginAt = 0;
      state.reset();
      version = undefined;
      return;
    }
    if (res.status === 403) {
      lockReason = 'banned';
      nextLoginAt = Date.now() + options.loginRetryMs;
      throw new MediaError('banned', `/api/v2/auth/login: HTTP 403, qBittorrent banned this IP after too many failed logins; ${waitMessage()}`, { endpoint: res.endpoint, status: 403 });
    }
    if ((res.status === 200 && body === 'Fails.') || res.status === 401) {
      failures++;
      lockReason = 'auth';
      const wait = failures >= options.maxLoginFailures ? options.loginRetryMs : Math.min(options.loginRetryMs, spec.intervalMs * 2 ** failures);
      nextLoginAt = Date.now() + wait;
      throw new MediaError('auth', `/api/v2/auth/login: username or password refused (${failures} of ${options.maxLoginFailures} attempts before pausing); ${waitMessage()}`, { endpoint: res.endpoint, status: res.status });
    }
    checkStatus(res);
    throw new MediaError('invalid_response', `/api/v2/auth/login: unexpected answer (HTTP ${res.status})`, { endpoint: res.endpoint, status: res.status });
  };

  /** A GET with the session; logs in first when needed, and once more when the SID expired. */
  const get = async (path: string, signal: AbortSignal, query?: Record<string, string | number>): Promise<HttpResponse> => {
    for (let attempt = 0; ; attempt++) {
      if (!sid) await login(signal);
      const res = await http.send(path, { signal, headers: { cookie: `SID=${sid}` }, ...(query && { query }) });
      if (res.status === 403 && attempt === 0) { sid = undefined; continue; }
      if (res.status === 403) throw new MediaError('auth', `${res.endpoint}: HTTP 403 right after a successful login`, { endpoint: res.endpoint, status: 403 });
      checkStatus(res);
      return res;
    }
  };

  return {
    spec,
    async poll(signal) {
      const data = parseJsonBody(await get('api/v2/sync/maindata', signal, { rid: state.rid }), MainDataShape);
      state.apply(data);
      if (!version) {
        const res = await get('api/v2/app/version', signal);
        version = res.text.trim().slice(0, 32) || undefined;
      }
      const torrents = [...state.torrents].map(([hash, t]) => toTorrent(hash, t));
      const sorted = [...torrents].sort((a, b) => rank(a) - rank(b) || (rank(a) === 0 ? b.progress - a.progress : 0) || (b.addedOn ?? '').localeCompare(a.addedOn ?? ''));
      const s = state.server;
      const count = (f: (t: MediaTorrent) => boolean) => torrents.filter(f).length;
      const snapshot: MediaTransferSnapshot = {
        source: spec.name, kind: 'qbittorrent', at: nowIso(), ...(version && { version }),
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
        truncated: torrents.length > limits.snapshotMaxItems,
        torrents: sorted.slice(0, limits.snapshotMaxItems),
      };
      const observations: DownloadObservation[] = torrents.map((t) => ({
        id: downloadKey(t.hash), rawId: t.hash, state: t.phase,
        info: {
          title: t.name, size: t.size, protocol: 'torrent', downloadClient: spec.name,
          ...(t.phase === 'failed' && { reason: t.state === 'missingFiles' ? 'qBittorrent: files missing' : 'qBittorrent: torrent in error state' }),
        },
      }));
      return { snapshots: [{ key: 'mediaTransfer', payload: snapshot }], downloads: { observations, complete: true } };
    },
  };
}
