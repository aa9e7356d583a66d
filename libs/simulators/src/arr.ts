import type { IncomingMessage, ServerResponse } from 'node:http';
import { applyMediaFaults, fakeHash, paging, requestUrl, sendMediaJson, sendText, type MediaSimFaults } from './media-sim.ts';
import { startSimServer, type SimContext, type SimOptions, type Simulator } from './sim.ts';

/*
 * Sonarr (API v3), Radarr (API v3) and Prowlarr (API v1) as their APIs answer: camelCase JSON,
 * nulls omitted, paging `{page,pageSize,sortKey,sortDirection,totalRecords,records}`, lower-case
 * enum strings, `X-Api-Key` (or `?apikey=`, or `Authorization: Bearer`) on everything under /api,
 * an empty 401 for a wrong key, and the web UI's HTML for any path outside /api.
 */

export type ArrApp = 'sonarr' | 'radarr' | 'prowlarr';

export interface ArrSimOptions extends Omit<SimOptions, 'models' | 'tokens' | 'tokenIntervalMs'> {
  app: ArrApp;
  apiKey: string;
  version?: string;
  instanceName?: string;
  /** Radarr before v5.6: no `wanted/missing` or `wanted/cutoff`; missing movies are counted from `/api/v3/movie`. */
  legacyWanted?: boolean;
  faults?: MediaSimFaults;
}

/** A queue record as Sonarr v4 / Radarr v5 return it. */
export interface ArrQueueRecord {
  id: number;
  seriesId?: number;
  episodeId?: number;
  seasonNumber?: number;
  movieId?: number;
  languages: { id: number; name: string }[];
  quality: { quality: { id: number; name: string; source: string; resolution: number }; revision: { version: number; real: number; isRepack: boolean } };
  customFormats: unknown[];
  customFormatScore: number;
  size: number;
  title: string;
  sizeleft: number;
  timeleft?: string;
  estimatedCompletionTime?: string;
  added: string;
  status: string;
  trackedDownloadStatus?: string;
  trackedDownloadState?: string;
  statusMessages: { title: string; messages: string[] }[];
  errorMessage?: string;
  downloadId?: string;
  protocol: string;
  downloadClient?: string;
  downloadClientHasPostImportCategory: boolean;
  indexer?: string;
  outputPath?: string;
  episodeHasFile?: boolean;
}

export type ArrQueueInput = Partial<ArrQueueRecord> & { title: string };

export interface ArrHistoryRecord {
  id: number;
  seriesId?: number;
  episodeId?: number;
  movieId?: number;
  sourceTitle: string;
  quality: ArrQueueRecord['quality'];
  customFormats: unknown[];
  customFormatScore: number;
  qualityCutoffNotMet: boolean;
  date: string;
  downloadId?: string;
  /** grabbed, downloadFolderImported, downloadFailed, episodeFileDeleted / movieFileDeleted, … */
  eventType: string;
  data: Record<string, string>;
}

export interface ArrHealthIssue { source: string; type: 'ok' | 'notice' | 'warning' | 'error'; message: string; wikiUrl: string }

export interface ProwlarrIndexer { id: number; name: string; enable: boolean; protocol: 'torrent' | 'usenet'; privacy: string; implementation: string; priority: number }

export interface ArrSimulator extends Simulator {
  readonly app: ArrApp;
  setFaults(faults: MediaSimFaults): void;
  readonly queue: ArrQueueRecord[];
  readonly history: ArrHistoryRecord[];
  /** Adds a queue record (defaults: downloading via qBittorrent, half done); returns it. */
  addQueueItem(input: ArrQueueInput): ArrQueueRecord;
  /** Changes every record of a download (a season pack has several). */
  updateQueueItem(downloadId: string, patch: Partial<ArrQueueRecord>): void;
  removeQueueItem(downloadId: string): void;
  /** Replaces the queue with `n` generated downloading records. */
  fillQueue(n: number): void;
  addHistory(record: Partial<ArrHistoryRecord> & { downloadId: string; eventType: string }): void;
  setHealth(issues: ArrHealthIssue[]): void;
  setWanted(counts: { missing?: number; cutoff?: number }): void;
  /** Prowlarr: the indexers, their failure status and statistics. */
  setIndexers(indexers: ProwlarrIndexer[], failing?: { indexerId: number; disabledTill?: string; mostRecentFailure?: string }[]): void;
}

const DEFAULT_VERSION: Record<ArrApp, string> = { sonarr: '4.0.15.2941', radarr: '5.26.2.10099', prowlarr: '1.37.0.5076' };
const APP_NAME: Record<ArrApp, string> = { sonarr: 'Sonarr', radarr: 'Radarr', prowlarr: 'Prowlarr' };
const START_TIME = '2026-11-20T08:00:00.000Z';
const QUALITY = { quality: { id: 7, name: 'Bluray-1080p', source: 'bluray', resolution: 1080 }, revision: { version: 1, real: 0, isRepack: false } };

export async function startArrSimulator(options: ArrSimOptions): Promise<ArrSimulator> {
  const { app, apiKey } = options;
  const apiBase = app === 'prowlarr' ? '/api/v1' : '/api/v3';
  const version = options.version ?? DEFAULT_VERSION[app];
  const queue: ArrQueueRecord[] = [];
  const history: ArrHistoryRecord[] = [];
  let health: ArrHealthIssue[] = [];
  let wanted = { missing: 0, cutoff: 0 };
  let nextId = 1000;
  let indexers: ProwlarrIndexer[] = [
    { id: 1, name: 'Nyaa.si', enable: true, protocol: 'torrent', privacy: 'public', implementation: 'Cardigann', priority: 25 },
    { id: 2, name: 'NZBgeek', enable: true, protocol: 'usenet', privacy: 'private', implementation: 'Newznab', priority: 25 },
  ];
  let failing: { indexerId: number; disabledTill?: string; mostRecentFailure?: string }[] = [];

  const authorized = (req: IncomingMessage, url: URL): boolean => {
    const header = req.headers['x-api-key'];
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const key = (Array.isArray(header) ? header[0] : header) ?? url.searchParams.get('apikey') ?? bearer;
    return key === apiKey;
  };

  const systemStatus = () => ({
    appName: APP_NAME[app], instanceName: options.instanceName ?? APP_NAME[app], version, buildTime: '2026-10-01T00:00:00Z',
    isDebug: false, isProduction: true, isAdmin: false, isUserInteractive: false, startupPath: '/app/bin', appData: '/config',
    osName: 'ubuntu', osVersion: '24.04', isNetCore: true, isLinux: true, isOsx: false, isWindows: false, isDocker: true,
    mode: 'console', branch: app === 'prowlarr' ? 'master' : 'main', authentication: 'forms', databaseType: 'sqLite', databaseVersion: '3.46.1',
    migrationVersion: 215, urlBase: '', runtimeVersion: '8.0.12', runtimeName: '.NET', startTime: START_TIME, packageUpdateMechanism: 'docker',
  });

  const page = <T>(url: URL, all: T[], sortKey: string) => {
    const { page: p, pageSize } = paging(url);
    return { page: p, pageSize, sortKey, sortDirection: 'ascending', totalRecords: all.length, records: all.slice((p - 1) * pageSize, p * pageSize) };
  };

  const queueStatus = () => {
    const errors = queue.some((r) => r.trackedDownloadStatus === 'error');
    const warnings = queue.some((r) => r.trackedDownloadStatus === 'warning');
    return { totalCount: queue.length, count: queue.length, unknownCount: 0, errors, warnings, unknownErrors: false, unknownWarnings: false };
  };

  const handler = async (req: IncomingMessage, res: ServerResponse, ctx: SimContext): Promise<void> => {
    const url = requestUrl(req);
    const notFound = () => sendMediaJson(res, ctx, 404, { message: 'NotFound', description: `${url.pathname} was not found` });
    if (await applyMediaFaults(res, ctx, (status) => (status === 401 ? undefined : { message: status >= 500 ? 'Internal Server Error' : 'Error', description: 'simulated fault' }))) return;
    if (url.pathname === '/ping') return sendMediaJson(res, ctx, 200, { status: 'OK' });
    if (!url.pathname.startsWith('/api/')) {
      return sendText(res, 200, `<!doctype html><html><head><title>${APP_NAME[app]}</title></head><body><div id="root"></div></body></html>`, 'text/html');
    }
    if (!authorized(req, url)) {
      res.writeHead(401, { 'content-length': '0' });
      res.end();
      return;
    }
    if (req.method !== 'GET') return notFound();
    const path = url.pathname.startsWith(apiBase) ? url.pathname.slice(apiBase.length) : null;
    switch (path) {
      case '/system/status': return sendMediaJson(res, ctx, 200, systemStatus());
      case '/health': return sendMediaJson(res, ctx, 200, health);
      default: break;
    }
    if (app === 'prowlarr') {
      switch (path) {
        case '/indexer':
          return sendMediaJson(res, ctx, 200, indexers.map((i) => ({
            ...i, indexerUrls: [`https://${i.name.toLowerCase()}.example/`], definitionName: i.name.toLowerCase(), description: '', language: 'en-US',
            encoding: 'Unicode (UTF-8)', enableRss: true, supportsRss: true, supportsSearch: true, supportsRedirect: false, supportsPagination: false,
            appProfileId: 1, redirect: false, downloadClientId: 0, added: START_TIME, fields: [], tags: [],
            capabilities: { limitsMax: 100, limitsDefault: 100, categories: [], supportsRawSearch: false, searchParams: ['q'], tvSearchParams: [], movieSearchParams: [], musicSearchParams: [], bookSearchParams: [] },
          })));
        case '/indexerstatus':
          return sendMediaJson(res, ctx, 200, failing.map((f, i) => ({ id: i + 1, indexerId: f.indexerId, ...(f.disabledTill && { disabledTill: f.disabledTill }), ...(f.mostRecentFailure && { mostRecentFailure: f.mostRecentFailure, initialFailure: f.mostRecentFailure }) })));
        case '/indexerstats':
          return sendMediaJson(res, ctx, 200, {
            id: 1,
            indexers: indexers.map((i) => ({
              indexerId: i.id, indexerName: i.name, averageResponseTime: 420 + i.id, averageGrabResponseTime: 300, numberOfQueries: 120 * i.id, numberOfGrabs: 7 * i.id,
              numberOfRssQueries: 40, numberOfAuthQueries: 0, numberOfFailedQueries: failing.some((f) => f.indexerId === i.id) ? 9 : 0, numberOfFailedGrabs: 0,
              numberOfFailedRssQueries: 0, numberOfFailedAuthQueries: 0,
            })),
            userAgents: [{ userAgent: 'Sonarr', numberOfQueries: 120, numberOfGrabs: 7 }], hosts: [{ host: 'sonarr', numberOfQueries: 120, numberOfGrabs: 7 }],
          });
        default: return notFound();
      }
    }
    switch (path) {
      case '/diskspace':
        return sendMediaJson(res, ctx, 200, [
          { path: '/', label: '', freeSpace: 20_000_000_000, totalSpace: 100_000_000_000 },
          { path: app === 'sonarr' ? '/tv' : '/movies', label: 'media', freeSpace: 1_200_000_000_000, totalSpace: 8_000_000_000_000 },
        ]);
      case '/queue': return sendMediaJson(res, ctx, 200, page(url, queue, 'timeleft'));
      case '/queue/status': return sendMediaJson(res, ctx, 200, queueStatus());
      case '/wanted/missing':
      case '/wanted/cutoff': {
        if (app === 'radarr' && options.legacyWanted) return notFound();
        const total = path === '/wanted/missing' ? wanted.missing : wanted.cutoff;
        const { page: p, pageSize } = paging(url);
        const records = Array.from({ length: Math.max(0, Math.min(pageSize, total - (p - 1) * pageSize)) }, (_, i) => (app === 'sonarr'
          ? { seriesId: 1, tvdbId: 100 + i, episodeFileId: 0, seasonNumber: 1, episodeNumber: i + 1, title: `Episode ${i + 1}`, airDateUtc: START_TIME, monitored: true, hasFile: false, id: 5000 + i }
          : { title: `Movie ${i + 1}`, year: 2020, monitored: true, hasFile: false, id: 6000 + i }));
        return sendMediaJson(res, ctx, 200, { page: p, pageSize, sortKey: app === 'sonarr' ? 'episodes.airDateUtc' : 'movieMetadata.sortTitle', sortDirection: 'descending', totalRecords: total, records });
      }
      case '/movie': {
        if (app !== 'radarr') return notFound();
        const movies = Array.from({ length: wanted.missing + 3 }, (_, i) => ({ id: i + 1, title: `Movie ${i + 1}`, year: 2020, monitored: true, hasFile: i >= wanted.missing, isAvailable: true, status: 'released' }));
        return sendMediaJson(res, ctx, 200, movies);
      }
      case '/history': {
        const downloadId = url.searchParams.get('downloadId');
        const eventType = url.searchParams.get('eventType');
        const matching = history.filter((h) => (!downloadId || h.downloadId === downloadId) && (!eventType || h.eventType === eventType || String(EVENT_TYPE_IDS[h.eventType]) === eventType));
        return sendMediaJson(res, ctx, 200, page(url, [...matching].reverse(), 'date'));
      }
      default: return notFound();
    }
  };

  const base = await startSimServer(options, handler);
  const records = (downloadId: string) => queue.filter((r) => r.downloadId === downloadId);
  const sim: ArrSimulator = {
    ...base,
    app,
    url: base.url,
    port: base.port,
    requests: base.requests,
    queue,
    history,
    setFaults: (f) => base.setFaults(f),
    addQueueItem(input) {
      const id = nextId++;
      const size = input.size ?? 1_500_000_000;
      const record: ArrQueueRecord = {
        ...(app === 'sonarr' ? { seriesId: 1, episodeId: id, seasonNumber: 1 } : { movieId: 1 }),
        languages: [{ id: 1, name: 'English' }], quality: QUALITY, customFormats: [], customFormatScore: 0,
        size, sizeleft: size / 2, timeleft: '00:05:00', estimatedCompletionTime: new Date(Date.now() + 300_000).toISOString(), added: new Date().toISOString(),
        status: 'downloading', trackedDownloadStatus: 'ok', trackedDownloadState: 'downloading', statusMessages: [],
        downloadId: fakeHash(id), protocol: 'torrent', downloadClient: 'qBittorrent', downloadClientHasPostImportCategory: false, indexer: 'Nyaa.si (Prowlarr)',
        outputPath: `/downloads/${app === 'sonarr' ? 'tv' : 'movies'}/${input.title}`,
        ...(app === 'sonarr' && { episodeHasFile: false }),
        ...input,
        id,
      };
      queue.push(record);
      return record;
    },
    updateQueueItem(downloadId, patch) {
      const found = records(downloadId);
      if (found.length === 0) throw new Error(`no queue record with downloadId ${downloadId}`);
      for (const r of found) Object.assign(r, patch);
    },
    removeQueueItem(downloadId) {
      for (let i = queue.length - 1; i >= 0; i--) if (queue[i]!.downloadId === downloadId) queue.splice(i, 1);
    },
    fillQueue(n) {
      queue.length = 0;
      for (let i = 0; i < n; i++) sim.addQueueItem({ title: `Generated.Release.${i}.1080p.WEB-DL-GRP`, downloadId: fakeHash(`fill-${i}`) });
    },
    addHistory(record) {
      const id = nextId++;
      history.push({
        ...(app === 'sonarr' ? { seriesId: 1, episodeId: 1 } : { movieId: 1 }),
        sourceTitle: queue.find((q) => q.downloadId === record.downloadId)?.title ?? 'Some.Release', quality: QUALITY, customFormats: [], customFormatScore: 0,
        qualityCutoffNotMet: false, date: new Date().toISOString(), data: {}, ...record, id,
      });
    },
    setHealth(issues) { health = issues; },
    setWanted(counts) { wanted = { missing: counts.missing ?? wanted.missing, cutoff: counts.cutoff ?? wanted.cutoff }; },
    setIndexers(list, fails = []) { indexers = list; failing = fails; },
  };
  return sim;
}

/** History event types by their numeric id (Sonarr's EpisodeHistoryEventType / Radarr's MovieHistoryEventType agree on these). */
const EVENT_TYPE_IDS: Record<string, number> = { grabbed: 1, downloadFolderImported: 3, downloadFailed: 4 };
