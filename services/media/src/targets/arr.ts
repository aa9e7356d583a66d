import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import type { MediaArrLibrary, MediaHealthIssue, MediaQueueItem, MediaQueueSnapshot } from '@homelab/bus';
import { MediaError } from '../errors.ts';
import { HttpClient, shape } from '../http.ts';
import { downloadKey, nowIso, type DownloadObservation, type DownloadState, type GoneOutcome, type MediaTarget, type PollResult, type TargetLimits, type TargetSpec } from './types.ts';

/*
 * What Sonarr (API v3) and Radarr (API v3) share: system status, health, disk space, the paged
 * queue and its status, wanted counts and the history lookup. `sonarr.ts` and `radarr.ts` give the
 * differences (the item each queue record points at, Radarr's older wanted endpoints).
 */

const Open = { additionalProperties: true } as const;
const OptStr = Type.Optional(Type.Union([Type.String(), Type.Null()]));

export const SystemStatusShape = shape(Type.Object({ appName: Type.Optional(Type.String()), instanceName: OptStr, version: Type.String(), startTime: OptStr }, Open));
const HealthSchema = Type.Array(Type.Object({ source: Type.String(), type: Type.String(), message: Type.String(), wikiUrl: OptStr }, Open));
export const HealthShape = shape(HealthSchema);
const DiskSpaceShape = shape(Type.Array(Type.Object({ path: Type.String(), label: OptStr, freeSpace: Type.Number(), totalSpace: Type.Number() }, Open)));
const QueueStatusShape = shape(Type.Object({
  totalCount: Type.Integer(), count: Type.Integer(), unknownCount: Type.Integer(), errors: Type.Boolean(), warnings: Type.Boolean(),
  unknownErrors: Type.Boolean(), unknownWarnings: Type.Boolean(),
}, Open));
const QueueRecord = Type.Object({
  id: Type.Integer(),
  title: OptStr,
  status: OptStr,
  trackedDownloadStatus: OptStr,
  trackedDownloadState: OptStr,
  size: Type.Optional(Type.Number()),
  sizeleft: Type.Optional(Type.Number()),
  timeleft: OptStr,
  estimatedCompletionTime: OptStr,
  downloadId: OptStr,
  protocol: OptStr,
  downloadClient: OptStr,
  indexer: OptStr,
  errorMessage: OptStr,
  statusMessages: Type.Optional(Type.Array(Type.Object({ title: OptStr, messages: Type.Optional(Type.Array(Type.String())) }, Open))),
  quality: Type.Optional(Type.Object({ quality: Type.Optional(Type.Object({ name: Type.Optional(Type.String()) }, Open)) }, Open)),
  seriesId: Type.Optional(Type.Integer()),
  movieId: Type.Optional(Type.Integer()),
}, Open);
export type ArrQueueRecord = Static<typeof QueueRecord>;
const Paged = <T extends Parameters<typeof Type.Array>[0]>(record: T) => Type.Object({ page: Type.Integer(), pageSize: Type.Integer(), totalRecords: Type.Integer({ minimum: 0 }), records: Type.Array(record) }, Open);
const QueueShape = shape(Paged(QueueRecord));
const CountShape = shape(Type.Object({ totalRecords: Type.Integer({ minimum: 0 }) }, Open));
const HistoryShape = shape(Paged(Type.Object({ eventType: Type.String(), downloadId: OptStr, date: OptStr }, Open)));

export interface ArrFlavor {
  kind: 'sonarr' | 'radarr';
  /** Extra query parameters of `GET /queue`. */
  queueQuery: Record<string, string>;
  /** `wanted/missing` and `wanted/cutoff` counts; null where the version cannot tell. */
  wantedCounts(client: ArrClient, signal: AbortSignal): Promise<{ missing: number | null; cutoffUnmet: number | null }>;
}

/** The *arr API under `/api/v3`, with the key in `X-Api-Key`. */
export class ArrClient {
  readonly http: HttpClient;
  readonly #prefix: string;

  constructor(spec: TargetSpec, apiVersion: 'v1' | 'v3') {
    if (!spec.apiKey) throw new MediaError('config', `${spec.name}: no API key (${spec.kind.toUpperCase()}_API_KEY)`);
    this.http = new HttpClient({ baseUrl: spec.url, timeoutMs: spec.timeoutMs, maxBytes: spec.maxResponseBytes, headers: { 'x-api-key': spec.apiKey } });
    this.#prefix = `api/${apiVersion}`;
  }

  get<S extends TSchema>(path: string, check: TypeCheck<S>, signal: AbortSignal, query?: Record<string, string | number | boolean>): Promise<Static<S>> {
    return this.http.json(`${this.#prefix}${path}`, check, { signal, ...(query && { query }) });
  }

  /** `totalRecords` of a paged endpoint, read with `pageSize=1`. */
  async count(path: string, signal: AbortSignal): Promise<number> {
    return (await this.get(path, CountShape, signal, { page: 1, pageSize: 1 })).totalRecords;
  }
}

function str(v: string | null | undefined): string | undefined {
  return v === null || v === undefined || v === '' ? undefined : v;
}

export function healthIssues(list: Static<typeof HealthSchema>): MediaHealthIssue[] {
  return list.map((h) => ({ source: h.source, type: h.type, message: h.message, ...(str(h.wikiUrl) && { wikiUrl: h.wikiUrl! }) }));
}

/** How the gateway reads a queue item's status. */
export function queuePhase(status: string, state: string | undefined): MediaQueueItem['phase'] {
  const s = status.toLowerCase();
  const t = (state ?? '').toLowerCase();
  if (s === 'failed' || t === 'failed' || t === 'failedpending') return 'failed';
  if (t === 'imported') return 'imported';
  if (s === 'completed' || t === 'importpending' || t === 'importing' || t === 'importblocked') return 'completed';
  if (s === 'delay' || s === 'fallback') return 'waiting';
  return 'downloading';
}

export interface GroupedItem {
  item: MediaQueueItem;
  /** The download id as the *arr spells it. */
  rawId: string | undefined;
}

/** Groups a queue's records by download (a season pack has one record per episode). */
export function groupQueue(records: ArrQueueRecord[]): GroupedItem[] {
  const byId = new Map<string, MediaQueueItem>();
  const items: GroupedItem[] = [];
  for (const r of records) {
    const rawId = str(r.downloadId);
    const existing = rawId ? byId.get(downloadKey(rawId)) : undefined;
    if (existing) { existing.records++; continue; }
    const status = (str(r.status) ?? 'unknown');
    const size = Math.max(0, r.size ?? 0);
    const sizeLeft = Math.max(0, Math.min(size, r.sizeleft ?? 0));
    const messages = (r.statusMessages ?? []).flatMap((m) => (m.messages ?? []).map((text) => (str(m.title) ? `${m.title}: ${text}` : text)));
    const item: MediaQueueItem = {
      downloadId: rawId ? downloadKey(rawId) : null,
      title: str(r.title) ?? '(untitled)',
      status,
      ...(str(r.trackedDownloadStatus) && { trackedDownloadStatus: r.trackedDownloadStatus! }),
      ...(str(r.trackedDownloadState) && { trackedDownloadState: r.trackedDownloadState! }),
      phase: queuePhase(status, str(r.trackedDownloadState)),
      progress: size > 0 ? Math.round(((size - sizeLeft) / size) * 10_000) / 10_000 : 0,
      size, sizeLeft,
      ...(str(r.timeleft) && { timeLeft: r.timeleft! }),
      ...(str(r.estimatedCompletionTime) && { estimatedCompletionTime: r.estimatedCompletionTime! }),
      ...(str(r.protocol) && { protocol: r.protocol! }),
      ...(str(r.downloadClient) && { downloadClient: r.downloadClient! }),
      ...(str(r.indexer) && { indexer: r.indexer! }),
      ...(str(r.quality?.quality?.name) && { quality: r.quality!.quality!.name! }),
      ...(str(r.errorMessage) && { errorMessage: r.errorMessage! }),
      ...(messages.length > 0 && { messages: messages.slice(0, 10) }),
      ...(r.seriesId !== undefined && { seriesId: r.seriesId }),
      ...(r.movieId !== undefined && { movieId: r.movieId }),
      records: 1,
    };
    // Items without a download id (a pending `delay`) stay out of the map: each is its own item.
    if (rawId) byId.set(downloadKey(rawId), item);
    items.push({ item, rawId });
  }
  return items;
}

/** Reads every page of the queue, up to `maxRecords`; returns the records and whether all were read. */
export async function readQueue(client: ArrClient, flavor: ArrFlavor, limits: TargetLimits, signal: AbortSignal): Promise<{ records: ArrQueueRecord[]; totalRecords: number; complete: boolean }> {
  const seen = new Set<number>();
  const records: ArrQueueRecord[] = [];
  let totalRecords = 0;
  for (let page = 1; ; page++) {
    const body = await client.get('/queue', QueueShape, signal, { page, pageSize: limits.queuePageSize, ...flavor.queueQuery });
    totalRecords = body.totalRecords;
    for (const r of body.records) {
      if (seen.has(r.id)) continue; // the queue moved between two pages
      seen.add(r.id);
      records.push(r);
    }
    if (records.length >= limits.maxQueueRecords) return { records: records.slice(0, limits.maxQueueRecords), totalRecords, complete: totalRecords <= limits.maxQueueRecords };
    if (body.records.length === 0 || page * limits.queuePageSize >= totalRecords) break;
  }
  return { records, totalRecords, complete: true };
}

/** What became of a download that left the queue, from its history. */
export async function resolveGone(client: ArrClient, rawId: string, signal: AbortSignal): Promise<GoneOutcome> {
  const history = await client.get('/history', HistoryShape, signal, { downloadId: rawId, page: 1, pageSize: 20, sortKey: 'date', sortDirection: 'descending' });
  for (const h of history.records) {
    if (h.downloadId && h.downloadId !== rawId) continue;
    if (/imported/i.test(h.eventType)) return 'imported';
    if (/failed/i.test(h.eventType)) return 'failed';
  }
  return 'removed';
}

export function queueObservations(items: GroupedItem[]): DownloadObservation[] {
  const out: DownloadObservation[] = [];
  for (const { item, rawId } of items) {
    if (!item.downloadId || !rawId || item.phase === 'waiting') continue;
    const state: DownloadState = item.phase;
    out.push({
      id: item.downloadId, rawId, state,
      info: {
        title: item.title, size: item.size,
        ...(item.protocol && { protocol: item.protocol }), ...(item.downloadClient && { downloadClient: item.downloadClient }),
        ...(item.indexer && { indexer: item.indexer }), ...(item.quality && { quality: item.quality }),
        ...(state === 'failed' && { reason: item.errorMessage ?? item.messages?.[0] ?? item.status }),
        // The queue names the release, not the series or movie (that would take includeSeries/includeMovie,
        // several KB a record): ids only; the Grab/Download webhooks carry the titles.
        ...(item.seriesId !== undefined && { seriesId: item.seriesId }),
        ...(item.movieId !== undefined && { movieId: item.movieId }),
      },
    });
  }
  return out;
}

/** One poll of Sonarr or Radarr: the library snapshot (status, health, disks, wanted) and the queue. */
export function createArrTarget(spec: TargetSpec, flavor: ArrFlavor, limits: TargetLimits): MediaTarget {
  const client = new ArrClient(spec, 'v3');
  return {
    spec,
    async poll(signal): Promise<PollResult> {
      const [status, health, disks, queueStatus, wanted] = await Promise.all([
        client.get('/system/status', SystemStatusShape, signal),
        client.get('/health', HealthShape, signal),
        client.get('/diskspace', DiskSpaceShape, signal),
        client.get('/queue/status', QueueStatusShape, signal),
        flavor.wantedCounts(client, signal),
      ]);
      const queue = await readQueue(client, flavor, limits, signal);
      const at = nowIso();
      const items = groupQueue(queue.records);
      const problems: MediaError[] = [];
      if (!queue.complete) {
        problems.push(new MediaError('too_large', `/api/v3/queue: ${queue.totalRecords} records, more than media.maxQueueRecords (${limits.maxQueueRecords}); the rest was not read`, { endpoint: '/api/v3/queue' }));
      }
      const library: MediaArrLibrary = {
        source: spec.name, kind: flavor.kind, at, version: status.version,
        ...(str(status.instanceName) && { instanceName: status.instanceName! }), ...(str(status.startTime) && { startTime: status.startTime! }),
        health: healthIssues(health), missing: wanted.missing, cutoffUnmet: wanted.cutoffUnmet,
        diskSpace: disks.map((d) => ({ path: d.path, label: d.label ?? '', freeBytes: d.freeSpace, totalBytes: d.totalSpace })),
      };
      const snapshot: MediaQueueSnapshot = {
        source: spec.name, kind: flavor.kind, at, totalRecords: queue.totalRecords,
        truncated: !queue.complete || items.length > limits.snapshotMaxItems,
        status: { ...queueStatus },
        items: items.slice(0, limits.snapshotMaxItems).map((g) => g.item),
      };
      return {
        snapshots: [{ key: 'mediaLibrary', payload: library }, { key: 'mediaQueue', payload: snapshot }],
        downloads: { observations: queueObservations(items), complete: queue.complete, resolveGone: (rawId, s) => resolveGone(client, rawId, s) },
        problems,
      };
    },
  };
}
