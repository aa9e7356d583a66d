import {
  arrDownloadPayload, arrGrabPayload, type ArrSimulator, type ImmichSimulator, type JellyfinSimulator,
} from '@homelab/simulators';
import type { DemoTorrents } from './demo-torrents.ts';

/*
 * The media node's story in the demo, one tick at a time: Sonarr and Radarr grab a release, the
 * download progresses in qBittorrent and in their queues, completes, is imported (the queue entry
 * goes, the history says `downloadFolderImported`, the library grows), seeds a while and is
 * removed; the next one starts. On Jellyfin someone watches an episode, stops, and later someone
 * else watches a film transcoded. Immich gets a few photos now and then. The *arr apps send the
 * webhooks they would (Grab, Download) to the media service, as the real ones do when configured.
 */

export interface DemoLifeOptions {
  sonarr: ArrSimulator;
  radarr: ArrSimulator;
  prowlarr: ArrSimulator;
  jellyfin: JellyfinSimulator;
  immich: ImmichSimulator;
  torrents: DemoTorrents;
  /** One step of the story; a download takes about 24 ticks, a playback 20. */
  tickMs: number;
  webhookUrl: string;
  webhookSecret: string;
}

interface Release { app: 'sonarr' | 'radarr'; title: string; show: string; size: number }

const RELEASES: Release[] = [
  { app: 'sonarr', title: 'The.Expanse.S02E01.1080p.BluRay.x264-GRP', show: 'The Expanse', size: 24 * 1024 * 1024 },
  { app: 'radarr', title: 'Arrival.2016.1080p.BluRay.x264-GRP', show: 'Arrival', size: 32 * 1024 * 1024 },
  { app: 'sonarr', title: 'Severance.S01E03.1080p.WEB-DL.DDP5.1-GRP', show: 'Severance', size: 20 * 1024 * 1024 },
  { app: 'radarr', title: 'Dune.Part.Two.2024.1080p.WEB-DL-GRP', show: 'Dune: Part Two', size: 28 * 1024 * 1024 },
  { app: 'sonarr', title: 'Andor.S01E04.1080p.DSNP.WEB-DL-GRP', show: 'Andor', size: 22 * 1024 * 1024 },
];

interface Active { release: Release; hash: string; downloadId: string; phase: 'downloading' | 'importing' | 'seeding'; since: number }

const DOWNLOAD_TICKS = 24;
const SEED_TICKS = 12;
const PLAY_TICKS = 20;
const IDLE_TICKS = 6;

export class DemoLife {
  readonly #o: DemoLifeOptions;
  readonly #active: Active[] = [];
  #tick = 0;
  #next = 0;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  readonly #counts = { episodes: 2316, movies: 412, photos: 10_234 };

  constructor(options: DemoLifeOptions) {
    this.#o = options;
    const { sonarr, radarr, prowlarr } = options;
    sonarr.setWanted({ missing: 14, cutoff: 3 });
    radarr.setWanted({ missing: 6, cutoff: 1 });
    prowlarr.setHealth([]);
    sonarr.setHealth([{ source: 'IndexerRssCheck', type: 'notice', message: 'No indexers available with RSS sync enabled for 1 day', wikiUrl: 'https://wiki.servarr.com/sonarr/system#indexers-have-rss-sync-disabled' }]);
  }

  start(): void {
    const loop = (): void => {
      this.#running = this.step().catch(() => { /* one bad step does not end the story */ }).finally(() => {
        if (!this.#stopped) this.#timer = setTimeout(loop, this.#o.tickMs);
      });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  /** One tick of the story. */
  async step(): Promise<void> {
    const t = this.#tick++;
    // Two downloads under way, staggered: one starts at the beginning, the next a third of the way in.
    const downloading = this.#active.filter((a) => a.phase === 'downloading').length;
    if (downloading === 0 || (downloading === 1 && t % Math.round(DOWNLOAD_TICKS / 3) === 0 && this.#active.length < 3)) await this.#grab();
    for (const a of [...this.#active]) await this.#advance(a, t);
    this.#watch(t);
    if (t % 10 === 5) {
      this.#counts.photos += 3 + (t % 7);
      this.#o.immich.setUsers([
        { userId: '0b8e6a4c-3f2d-4d8e-9c1a-7e5f2b3c4d5e', userName: 'alice', photos: this.#counts.photos, videos: 512, usage: 98_000_000_000 + this.#counts.photos * 3_000_000, usagePhotos: 61_000_000_000 + this.#counts.photos * 3_000_000, usageVideos: 37_000_000_000, quotaSizeInBytes: null },
        { userId: '1c9f7b5d-4e3f-4e9f-8d2b-8f6a3c4d5e6f', userName: 'bob', photos: 2_048, videos: 64, usage: 15_500_000_000, usagePhotos: 11_000_000_000, usageVideos: 4_500_000_000, quotaSizeInBytes: 200_000_000_000 },
      ]);
    }
    // The simulators remember every request for tests; the demo runs for hours.
    for (const sim of [this.#o.sonarr, this.#o.radarr, this.#o.prowlarr, this.#o.jellyfin, this.#o.immich]) sim.requests.length = 0;
  }

  async #grab(): Promise<void> {
    const release = RELEASES[this.#next++ % RELEASES.length]!;
    const seconds = (DOWNLOAD_TICKS * this.#o.tickMs) / 1000;
    const hash = await this.#o.torrents.start(`${release.title}.mkv`, release.size, release.app === 'sonarr' ? 'tv' : 'movies', seconds);
    const arr = this.#arr(release.app);
    // Sonarr and Radarr name a download by the client's hash, upper-case.
    const downloadId = hash.toUpperCase();
    arr.addQueueItem({
      title: release.title, downloadId, size: release.size, sizeleft: release.size, status: 'downloading', trackedDownloadState: 'downloading',
      timeleft: clock(seconds), estimatedCompletionTime: new Date(Date.now() + seconds * 1000).toISOString(),
    });
    arr.addHistory({ downloadId, eventType: 'grabbed', sourceTitle: release.title });
    await this.#webhook(release.app, arrGrabPayload(release.app, { downloadId, title: release.title, size: release.size, ...(release.app === 'sonarr' ? { seriesTitle: release.show } : { movieTitle: release.show }) }));
    this.#active.push({ release, hash, downloadId, phase: 'downloading', since: this.#tick });
  }

  async #advance(a: Active, t: number): Promise<void> {
    const arr = this.#arr(a.release.app);
    const state = await this.#o.torrents.state(a.hash, this.#o.tickMs);
    if (!state) { this.#active.splice(this.#active.indexOf(a), 1); return; }
    if (a.phase === 'downloading') {
      const left = Math.round(a.release.size * (1 - state.progress));
      if (state.progress < 1) {
        const eta = state.dlSpeed > 0 ? left / state.dlSpeed : DOWNLOAD_TICKS * this.#o.tickMs / 1000;
        arr.updateQueueItem(a.downloadId, { sizeleft: left, timeleft: clock(eta), estimatedCompletionTime: new Date(Date.now() + eta * 1000).toISOString() });
        return;
      }
      arr.updateQueueItem(a.downloadId, { sizeleft: 0, timeleft: '00:00:00', status: 'completed', trackedDownloadState: 'importPending' });
      a.phase = 'importing';
      a.since = t;
      return;
    }
    if (a.phase === 'importing' && t - a.since >= 2) {
      // Imported: gone from the queue, in the history and the library.
      arr.removeQueueItem(a.downloadId);
      arr.addHistory({ downloadId: a.downloadId, eventType: 'downloadFolderImported', sourceTitle: a.release.title });
      await this.#webhook(a.release.app, arrDownloadPayload(a.release.app, { downloadId: a.downloadId, title: a.release.title, size: a.release.size, ...(a.release.app === 'sonarr' ? { seriesTitle: a.release.show } : { movieTitle: a.release.show }) }));
      if (a.release.app === 'sonarr') this.#counts.episodes++; else this.#counts.movies++;
      this.#o.jellyfin.setCounts({ EpisodeCount: this.#counts.episodes, MovieCount: this.#counts.movies, ItemCount: 4775 + this.#next });
      arr.setWanted({ missing: Math.max(0, (a.release.app === 'sonarr' ? 14 : 6) - (this.#next % 4)) });
      a.phase = 'seeding';
      a.since = t;
      return;
    }
    if (a.phase === 'seeding' && t - a.since >= SEED_TICKS) {
      await this.#o.torrents.remove(a.hash);
      this.#active.splice(this.#active.indexOf(a), 1);
    }
  }

  /** An episode watched in the living room, a pause, a film on a phone (transcoded), a pause, again. */
  #watch(t: number): void {
    const cycle = 2 * (PLAY_TICKS + IDLE_TICKS);
    const at = t % cycle;
    const { jellyfin } = this.#o;
    const tick = 10_000_000 * (this.#o.tickMs / 1000);
    if (at < PLAY_TICKS) {
      jellyfin.play({
        deviceId: 'living-room-tv', deviceName: 'Living Room TV', userName: 'alice', playMethod: 'DirectPlay', positionTicks: 6_000_000_000 + at * tick,
        item: { id: '5d2c8e1f4a7b4c3d9e0f1a2b3c4d5e6f', name: 'Dulcinea', type: 'Episode', seriesName: 'The Expanse', seasonNumber: 1, episodeNumber: 1, runTimeTicks: 34_800_000_000 },
      });
    } else if (at === PLAY_TICKS) jellyfin.stop('living-room-tv');
    else if (at >= PLAY_TICKS + IDLE_TICKS && at < 2 * PLAY_TICKS + IDLE_TICKS) {
      jellyfin.play({
        deviceId: 'bobs-phone', deviceName: 'Bob\'s phone', client: 'Jellyfin Android', userName: 'bob', playMethod: 'Transcode', positionTicks: 1_200_000_000 + (at - PLAY_TICKS - IDLE_TICKS) * tick,
        item: { id: '9a8b7c6d5e4f40312a1b2c3d4e5f6a7b', name: 'Blade Runner 2049', type: 'Movie', runTimeTicks: 98_400_000_000 },
        transcoding: { videoCodec: 'h264', audioCodec: 'aac', isVideoDirect: false, isAudioDirect: false, transcodeReasons: ['VideoCodecNotSupported', 'AudioCodecNotSupported'] },
      });
    } else if (at === 2 * PLAY_TICKS + IDLE_TICKS) jellyfin.stop('bobs-phone');
  }

  #arr(app: 'sonarr' | 'radarr'): ArrSimulator {
    return app === 'sonarr' ? this.#o.sonarr : this.#o.radarr;
  }

  async #webhook(source: 'sonarr' | 'radarr', body: Record<string, unknown>): Promise<void> {
    try {
      const res = await fetch(`${this.#o.webhookUrl}/${source}`, {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-homelab-secret': this.#o.webhookSecret }, body: JSON.stringify(body), signal: AbortSignal.timeout(3000),
      });
      await res.body?.cancel();
    } catch {
      // The media service may not be up yet (or restarting): the *arr apps do not retry either.
    }
  }
}

/** `01:05:09`, as Sonarr's `timeleft`. */
function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60].map((n) => String(n).padStart(2, '0')).join(':');
}
