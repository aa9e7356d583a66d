import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { applyMediaFaults, requestUrl, sendMediaJson, sendText, type MediaSimFaults } from './media-sim.ts';
import { startSimServer, type SimContext, type SimOptions, type Simulator } from './sim.ts';

/*
 * qBittorrent's WebUI API v2 as 4.5 answers it, for machines without qbittorrent-nox: `POST
 * /api/v2/auth/login` (form fields) → `Ok.` with a `SID` cookie, or `Fails.`; every other call
 * without a valid SID → 403 `Forbidden`; `sync/maindata` with `rid` deltas (only the fields that
 * changed since that rid, `torrents_removed`, `full_update` for rid 0 or an unknown rid);
 * `torrents/info`, `transfer/info`, `app/version`, `app/webapiVersion`.
 */

export interface QbittorrentSimOptions extends Omit<SimOptions, 'models' | 'tokens' | 'tokenIntervalMs'> {
  username: string;
  password: string;
  version?: string;
  faults?: MediaSimFaults;
}

/** A torrent's fields as `torrents/info` and `sync/maindata` carry them (the ones the lab reads, and a few more). */
export interface QbTorrentFields {
  name: string;
  size: number;
  total_size: number;
  progress: number;
  dlspeed: number;
  upspeed: number;
  downloaded: number;
  uploaded: number;
  amount_left: number;
  completed: number;
  eta: number;
  state: string;
  category: string;
  tags: string;
  save_path: string;
  content_path: string;
  ratio: number;
  added_on: number;
  completion_on: number;
  num_seeds: number;
  num_leechs: number;
  num_complete: number;
  num_incomplete: number;
  priority: number;
  seq_dl: boolean;
  auto_tmm: boolean;
  magnet_uri: string;
  tracker: string;
}

export interface QbittorrentSimulator extends Simulator {
  setFaults(faults: MediaSimFaults): void;
  /** Adds a torrent (downloading from nothing unless fields say otherwise); returns its hash (lower-case hex, as qBittorrent reports it). */
  addTorrent(input: { hash?: string; name: string; size: number; category?: string; savePath?: string } & Partial<QbTorrentFields>): string;
  /** Changes a torrent's fields (progress, speeds, state…); amount_left, completed and downloaded follow progress. */
  updateTorrent(hash: string, patch: Partial<QbTorrentFields>): void;
  removeTorrent(hash: string): void;
  torrent(hash: string): QbTorrentFields | undefined;
  hashes(): string[];
}

const INFINITE_ETA = 8_640_000;

export async function startQbittorrentSimulator(options: QbittorrentSimOptions): Promise<QbittorrentSimulator> {
  const version = options.version ?? 'v4.5.2';
  const torrents = new Map<string, QbTorrentFields>();
  const sessions = new Set<string>();
  // What each rid handed out, to answer the next request with the difference (qBittorrent keeps the last one per session).
  const snapshots = new Map<number, Map<string, string>>();
  let lastRid = 0;
  const totals = { dl: 0, up: 0 };

  const sid = (req: IncomingMessage): string | undefined => /(?:^|;\s*)SID=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];

  const serverState = (): Record<string, unknown> => {
    const list = [...torrents.values()];
    const dl = list.reduce((s, t) => s + t.dlspeed, 0);
    const up = list.reduce((s, t) => s + t.upspeed, 0);
    return {
      connection_status: 'connected', dht_nodes: 0, dl_info_data: totals.dl, dl_info_speed: dl, dl_rate_limit: 0, up_info_data: totals.up, up_info_speed: up, up_rate_limit: 0,
      free_space_on_disk: 1_200_000_000_000, alltime_dl: totals.dl, alltime_ul: totals.up, queueing: false, use_alt_speed_limits: false, refresh_interval: 1500,
    };
  };

  const maindata = (rid: number): Record<string, unknown> => {
    const now = new Map([...torrents].map(([h, t]) => [h, JSON.stringify(t)]));
    const before = rid > 0 ? snapshots.get(rid) : undefined;
    const next = ++lastRid;
    snapshots.set(next, now);
    for (const old of snapshots.keys()) if (old < next - 20) snapshots.delete(old);
    if (!before) {
      return { rid: next, full_update: true, torrents: Object.fromEntries(torrents), torrents_removed: [], categories: {}, tags: [], trackers: {}, server_state: serverState() };
    }
    const changed: Record<string, Partial<QbTorrentFields>> = {};
    for (const [hash, json] of now) {
      const old = before.get(hash);
      if (old === json) continue;
      const current = torrents.get(hash)!;
      if (!old) { changed[hash] = current; continue; }
      const previous = JSON.parse(old) as QbTorrentFields;
      changed[hash] = Object.fromEntries(Object.entries(current).filter(([k, v]) => previous[k as keyof QbTorrentFields] !== v));
    }
    const removed = [...before.keys()].filter((h) => !now.has(h));
    return {
      rid: next, ...(Object.keys(changed).length && { torrents: changed }), ...(removed.length && { torrents_removed: removed }), server_state: serverState(),
    };
  };

  const handler = async (req: IncomingMessage, res: ServerResponse, ctx: SimContext): Promise<void> => {
    const url = requestUrl(req);
    if (await applyMediaFaults(res, ctx, () => undefined)) return;
    if (url.pathname === '/api/v2/auth/login' && req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      if (form.get('username') !== options.username || form.get('password') !== options.password) return sendText(res, 200, 'Fails.');
      const id = randomBytes(24).toString('base64url');
      sessions.add(id);
      res.setHeader('set-cookie', `SID=${id}; HttpOnly; SameSite=Strict; path=/`);
      return sendText(res, 200, 'Ok.');
    }
    if (!url.pathname.startsWith('/api/')) return sendText(res, 200, '<!DOCTYPE html><html><head><title>qBittorrent Web UI</title></head><body></body></html>', 'text/html');
    const session = sid(req);
    if (!session || !sessions.has(session)) return sendText(res, 403, 'Forbidden');
    switch (url.pathname) {
      case '/api/v2/app/version': return sendText(res, 200, version);
      case '/api/v2/app/webapiVersion': return sendText(res, 200, '2.8.19');
      case '/api/v2/auth/logout': sessions.delete(session); return sendText(res, 200, '');
      case '/api/v2/sync/maindata': return sendMediaJson(res, ctx, 200, maindata(Number(url.searchParams.get('rid')) || 0));
      case '/api/v2/transfer/info': {
        const s = serverState();
        return sendMediaJson(res, ctx, 200, { connection_status: s['connection_status'], dht_nodes: 0, dl_info_data: totals.dl, dl_info_speed: s['dl_info_speed'], dl_rate_limit: 0, up_info_data: totals.up, up_info_speed: s['up_info_speed'], up_rate_limit: 0 });
      }
      case '/api/v2/torrents/info': {
        const category = url.searchParams.get('category');
        return sendMediaJson(res, ctx, 200, [...torrents].filter(([, t]) => category === null || t.category === category).map(([hash, t]) => ({ hash, ...t })));
      }
      default: res.writeHead(404, { 'content-length': '0' }); res.end(); return;
    }
  };

  const base = await startSimServer(options, handler);
  const fillIn = (t: QbTorrentFields): void => {
    t.progress = Math.min(1, Math.max(0, t.progress));
    t.completed = Math.round(t.size * t.progress);
    t.amount_left = t.size - t.completed;
    t.downloaded = Math.max(t.downloaded, t.completed);
    t.eta = t.progress >= 1 ? INFINITE_ETA : t.dlspeed > 0 ? Math.ceil(t.amount_left / t.dlspeed) : INFINITE_ETA;
    if (t.progress >= 1 && t.completion_on <= 0) t.completion_on = Math.floor(Date.now() / 1000);
  };
  return {
    ...base,
    setFaults: (f) => base.setFaults(f),
    addTorrent(input) {
      const hash = (input.hash ?? randomBytes(20).toString('hex')).toLowerCase();
      const savePath = input.savePath ?? '/downloads';
      const t: QbTorrentFields = {
        total_size: input.size, progress: 0, dlspeed: 0, upspeed: 0, downloaded: 0, uploaded: 0, amount_left: input.size, completed: 0, eta: INFINITE_ETA,
        state: 'metaDL', category: input.category ?? '', tags: '', save_path: savePath, content_path: `${savePath}/${input.name}`, ratio: 0,
        added_on: Math.floor(Date.now() / 1000), completion_on: -1, num_seeds: 0, num_leechs: 0, num_complete: 0, num_incomplete: 0, priority: 1, seq_dl: false, auto_tmm: false,
        magnet_uri: `magnet:?xt=urn:btih:${hash}&dn=${encodeURIComponent(input.name)}`, tracker: '',
        ...input,
        name: input.name,
      };
      delete (t as Partial<typeof input>).hash;
      delete (t as Partial<typeof input>).savePath;
      fillIn(t);
      torrents.set(hash, t);
      return hash;
    },
    updateTorrent(hash, patch) {
      const t = torrents.get(hash.toLowerCase());
      if (!t) throw new Error(`no torrent ${hash}`);
      const before = t.completed;
      Object.assign(t, patch);
      fillIn(t);
      totals.dl += Math.max(0, t.completed - before);
      if (patch.uploaded !== undefined) totals.up = [...torrents.values()].reduce((s, x) => s + x.uploaded, 0);
      t.ratio = t.downloaded > 0 ? Math.round((t.uploaded / t.downloaded) * 1000) / 1000 : 0;
    },
    removeTorrent(hash) { torrents.delete(hash.toLowerCase()); },
    torrent: (hash) => torrents.get(hash.toLowerCase()),
    hashes: () => [...torrents.keys()],
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => { text += c; if (text.length > 64 * 1024) req.destroy(); });
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}
