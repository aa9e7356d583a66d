import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  findQbittorrent, makeTorrent, startQbittorrent, startQbittorrentSimulator, type Qbittorrent, type QbittorrentSimulator,
} from '@homelab/simulators';

/*
 * The demo's download client, seen the way the lab sees qBittorrent: through its WebUI API. Where
 * qbittorrent-nox is installed it is the real one, downloading for real over loopback from a second
 * qbittorrent-nox that seeds files the demo makes (a swarm of one, no tracker, no DHT), at a rate
 * limit that makes a download last about as long as the demo wants. Elsewhere a simulator of its
 * WebUI API plays the same part.
 */

export interface TorrentState { progress: number; dlSpeed: number }

export interface DemoTorrents {
  /** `real` (qbittorrent-nox) or `simulated`. */
  readonly kind: 'real' | 'simulated';
  readonly url: string;
  readonly port: number;
  readonly username: string;
  readonly password: string;
  /** Starts downloading a new file of `size` bytes meant to take about `seconds`; returns its info hash (lower-case hex). */
  start(name: string, size: number, category: string, seconds: number): Promise<string>;
  /** Where a download is. The simulated one moves on by `elapsedMs` of download time when asked. */
  state(hash: string, elapsedMs: number): Promise<TorrentState | undefined>;
  /** Done with it (imported and seeded a while): gone from the client, its files too. */
  remove(hash: string): Promise<void>;
  close(): Promise<void>;
}

export async function startDemoTorrents(options: { root: string; port: number; env: NodeJS.ProcessEnv }): Promise<DemoTorrents> {
  const useReal = options.env['HOMELAB_DEMO_QBITTORRENT'] !== 'simulated' && findQbittorrent() !== undefined;
  return useReal ? startReal(options) : startSimulated(options);
}

async function startSimulated({ port }: { port: number }): Promise<DemoTorrents> {
  const password = randomBytes(12).toString('base64url');
  const sim: QbittorrentSimulator = await startQbittorrentSimulator({ port, username: 'admin', password });
  const plans = new Map<string, { size: number; seconds: number }>();
  return {
    kind: 'simulated', url: sim.url, port: sim.port, username: 'admin', password,
    async start(name, size, category, seconds) {
      const hash = sim.addTorrent({ name, size, category, savePath: `/downloads/${category}`, state: 'downloading', num_seeds: 4, num_complete: 12 });
      plans.set(hash, { size, seconds });
      return hash;
    },
    async state(hash, elapsedMs) {
      const t = sim.torrent(hash);
      const plan = plans.get(hash);
      if (!t || !plan) return undefined;
      if (t.progress < 1) {
        // Not perfectly even, as a real swarm is not.
        const speed = (plan.size / plan.seconds) * (0.75 + Math.random() * 0.5);
        const progress = Math.min(1, t.progress + (speed * elapsedMs) / 1000 / plan.size);
        sim.updateTorrent(hash, progress >= 1
          ? { progress: 1, dlspeed: 0, upspeed: 180_000, uploaded: t.uploaded + 180_000, state: 'uploading', num_leechs: 1 }
          : { progress, dlspeed: Math.round(speed), state: 'downloading' });
      } else {
        sim.updateTorrent(hash, { upspeed: Math.random() < 0.5 ? 0 : 90_000, state: Math.random() < 0.5 ? 'stalledUP' : 'uploading' });
      }
      const now = sim.torrent(hash)!;
      return { progress: now.progress, dlSpeed: now.dlspeed };
    },
    async remove(hash) { sim.removeTorrent(hash); plans.delete(hash); },
    async close() {
      sim.requests.length = 0;
      await sim.close();
    },
  };
}

async function startReal({ root, port }: { root: string; port: number }): Promise<DemoTorrents> {
  const dir = join(root, 'qbittorrent');
  const seeds = join(dir, 'swarm-files');
  const downloads = join(root, 'storage', 'downloads');
  mkdirSync(seeds, { recursive: true });
  mkdirSync(downloads, { recursive: true });
  // Profiles are made anew each start: their state is the demo's story, which starts over too.
  rmSync(join(dir, 'lab'), { recursive: true, force: true });
  rmSync(join(dir, 'swarm'), { recursive: true, force: true });
  const lab: Qbittorrent = await startQbittorrent(join(dir, 'lab'), { port });
  let swarm: Qbittorrent;
  try {
    swarm = await startQbittorrent(join(dir, 'swarm'));
  } catch (err) {
    await lab.stop();
    throw err;
  }
  const files = new Map<string, string>();
  return {
    kind: 'real', url: lab.url, port: lab.port, username: 'admin', password: lab.password,
    async start(name, size, category, seconds) {
      const data = randomBytes(size);
      const file = join(seeds, name);
      writeFileSync(file, data);
      const { torrent, infoHash } = makeTorrent(name, data, 256 * 1024);
      files.set(infoHash, file);
      await swarm.addTorrent(torrent, seeds);
      await lab.addTorrent(torrent, join(downloads, category), { category });
      // A swarm of one, found without a tracker: the lab's client is told where the seeder is.
      // Limited, so the download lasts about `seconds` (the peers are on loopback).
      await lab.post('/api/v2/torrents/setDownloadLimit', { hashes: infoHash, limit: String(Math.max(16 * 1024, Math.round(size / seconds))) });
      return infoHash;
    },
    async state(hash) {
      const [t] = await lab.api(`/api/v2/torrents/info?hashes=${hash}`) as { progress: number; dlspeed: number; num_seeds: number; state: string }[];
      if (!t) return undefined;
      // Until the seeder is known (it may still be checking its file), tell the client again.
      if (t.progress < 1 && t.num_seeds === 0) await lab.post('/api/v2/torrents/addPeers', { hashes: hash, peers: `127.0.0.1:${swarm.peerPort}` }).catch(() => '');
      return { progress: t.progress, dlSpeed: t.dlspeed };
    },
    async remove(hash) {
      await lab.post('/api/v2/torrents/delete', { hashes: hash, deleteFiles: 'true' }).catch(() => '');
      await swarm.post('/api/v2/torrents/delete', { hashes: hash, deleteFiles: 'true' }).catch(() => '');
      const file = files.get(hash);
      if (file) rmSync(file, { force: true });
      files.delete(hash);
    },
    async close() {
      await Promise.allSettled([lab.stop(), swarm.stop()]);
    },
  };
}
