import {
  AggregationTemporality, DataPointType, InMemoryMetricExporter, PeriodicExportingMetricReader, type MetricData,
} from '@opentelemetry/sdk-metrics';
import type { Attributes } from '@opentelemetry/api';
import type {
  HealthChanged, HealthProbeResult, InferenceCompleted, MediaDownloadEvent, MediaLibrarySnapshot, MediaQueueItem, MediaQueueSnapshot, MediaServiceError,
  MediaServiceRecovered, MediaSessionsSnapshot, MediaStorageAlert, MediaStorageSnapshot, MediaStreamEvent, MediaTransferSnapshot, MediaWebhookEvent,
} from '@homelab/bus';
import { METER_NAME, TelemetryMetrics, createMeterProvider } from './metrics.ts';
import type { InferenceMetricsOptions } from './metrics-inference.ts';

/** A histogram point's numbers, or a sum/gauge's value. */
export interface Point {
  attributes: Attributes;
  value: number;
  count?: number;
  sum?: number;
  buckets?: { boundaries: number[]; counts: number[] };
}

export interface MetricsHarness {
  metrics: TelemetryMetrics;
  /** Collects through the in-memory exporter: every metric by name. */
  collect(): Promise<Map<string, MetricData>>;
  /** The points of one metric whose attributes include `match`. */
  points(name: string, match?: Attributes): Promise<Point[]>;
  /** The single point matching; fails when none or several match. */
  point(name: string, match?: Attributes): Promise<Point>;
  shutdown(): Promise<void>;
}

/**
 * The telemetry metrics on a MeterProvider whose reader exports to an in-memory exporter: what
 * the unit tests assert on (the same instruments the Prometheus reader serves).
 */
export function metricsHarness(options: InferenceMetricsOptions = {}): MetricsHarness {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = createMeterProvider([reader]);
  const metrics = new TelemetryMetrics(provider.getMeter(METER_NAME), options);
  const collect = async (): Promise<Map<string, MetricData>> => {
    await reader.forceFlush();
    const out = new Map<string, MetricData>();
    for (const rm of exporter.getMetrics().slice(-1)) for (const sm of rm.scopeMetrics) for (const m of sm.metrics) out.set(m.descriptor.name, m);
    exporter.reset();
    return out;
  };
  const points = async (name: string, match: Attributes = {}): Promise<Point[]> => {
    const metric = (await collect()).get(name);
    if (!metric) return [];
    const out: Point[] = [];
    for (const dp of metric.dataPoints) {
      if (!Object.entries(match).every(([k, v]) => dp.attributes[k] === v)) continue;
      if (metric.dataPointType === DataPointType.HISTOGRAM) {
        const h = dp.value as { count: number; sum?: number; buckets: { boundaries: number[]; counts: number[] } };
        out.push({ attributes: dp.attributes, value: h.count, count: h.count, sum: h.sum ?? 0, buckets: h.buckets });
      } else {
        out.push({ attributes: dp.attributes, value: dp.value as number });
      }
    }
    return out;
  };
  return {
    metrics, collect, points,
    async point(name, match = {}) {
      const found = await points(name, match);
      if (found.length !== 1) throw new Error(`${name} ${JSON.stringify(match)}: ${found.length} points match: ${JSON.stringify(found.map((p) => p.attributes))}`);
      return found[0]!;
    },
    shutdown: () => provider.shutdown(),
  };
}

let seq = 0;
/** A valid `inference.completed` event: a streamed chat answered by vLLM, with overrides. */
export function completedEvent(overrides: Partial<InferenceCompleted> = {}): InferenceCompleted {
  seq++;
  return {
    requestId: `req_test${seq}`, traceId: '4bf92f3577b34da6a3ce929d0e0e4736', operation: 'chat', stream: true,
    requestedModel: 'smart', model: 'Qwen/Qwen2.5-7B-Instruct', responseModel: 'Qwen/Qwen2.5-7B-Instruct', backend: 'vllm',
    status: 'ok', httpStatus: 200, attempts: 1, routeReason: 'alias:smart > vllm', latencyMs: 812.4, ttftMs: 95.1, backendMs: 810.9,
    overheadMs: 1.5, inputTokens: 26, outputTokens: 282, finishReason: 'stop', finishedAt: new Date().toISOString(),
    ...overrides,
  };
}

// ------------------------------------------------------------------ health and media events, valid against their schemas

const at = (offsetMs = 0): string => new Date(Date.now() + offsetMs).toISOString();

export function healthChangedEvent(overrides: Partial<HealthChanged> = {}): HealthChanged {
  const since = overrides.since ?? at();
  const state = overrides.state ?? 'down';
  return {
    id: `ai-node.vllm@${Date.parse(since)}:${state}`, key: 'ai-node.vllm', node: 'ai-node', service: 'vllm', kind: 'vllm',
    target: 'http://127.0.0.1:8000/health', state, previous: 'up', since, previousSince: at(-60_000), latencyMs: null,
    error: 'connect ECONNREFUSED', ...overrides,
  };
}

export function healthProbeEvent(overrides: Partial<HealthProbeResult> = {}): HealthProbeResult {
  return {
    key: 'ai-node.vllm', node: 'ai-node', service: 'vllm', kind: 'vllm', outcome: 'ok', state: 'up', latencyMs: 12.5, error: null, at: at(),
    ...overrides,
  };
}

export function mediaQueueEvent(items: { status: string; phase: MediaQueueItem['phase'] }[], overrides: Partial<MediaQueueSnapshot> = {}): MediaQueueSnapshot {
  return {
    source: 'sonarr', kind: 'sonarr', at: at(), totalRecords: items.length, truncated: false,
    items: items.map((it, i) => ({
      downloadId: `hash${i}`, title: `Some.Show.S01E0${i}.1080p`, status: it.status, phase: it.phase, progress: 0.5, size: 1e9, sizeLeft: 5e8, records: 1,
      ...(it.phase !== 'waiting' && { trackedDownloadStatus: 'ok', trackedDownloadState: it.phase === 'completed' ? 'importPending' : it.phase }),
    })),
    ...overrides,
  };
}

export function mediaTransferEvent(overrides: Partial<MediaTransferSnapshot> = {}): MediaTransferSnapshot {
  return {
    source: 'qbittorrent', kind: 'qbittorrent', at: at(), connectionStatus: 'connected', dlSpeed: 2_500_000, upSpeed: 300_000, dlData: 1e10, upData: 2e9,
    dlRateLimit: 0, upRateLimit: 0, dhtNodes: 320, counts: { total: 5, downloading: 2, seeding: 2, paused: 1, checking: 0, errored: 0 }, truncated: false, torrents: [],
    ...overrides,
  };
}

export function mediaSessionsEvent(playMethods: (string | undefined)[], overrides: Partial<MediaSessionsSnapshot> = {}): MediaSessionsSnapshot {
  return {
    source: 'jellyfin', kind: 'jellyfin', at: at(), sessions: playMethods.length + 1,
    streams: playMethods.map((playMethod, i) => ({
      key: `dev${i}:item${i}`, deviceId: `dev${i}`, user: 'alice', item: { id: `item${i}`, name: 'A Movie', type: 'Movie' }, ...(playMethod && { playMethod }),
    })),
    ...overrides,
  };
}

export function mediaLibraryEvents(): MediaLibrarySnapshot[] {
  return [
    { source: 'sonarr', kind: 'sonarr', at: at(), health: [{ source: 'IndexerCheck', type: 'warning', message: 'No indexers' }], missing: 12, cutoffUnmet: 3, diskSpace: [{ path: '/mnt/media', label: 'media', freeBytes: 4e11, totalBytes: 2e12 }] },
    { source: 'prowlarr', kind: 'prowlarr', at: at(), health: [], indexers: { total: 5, enabled: 4, failing: [{ id: 3, name: 'SomeIndexer' }] }, stats: [] },
    { source: 'jellyfin', kind: 'jellyfin', at: at(), counts: { movieCount: 420, seriesCount: 37, episodeCount: 1234, itemCount: 1691 } },
    { source: 'immich', kind: 'immich', at: at(), photos: 25_000, videos: 800, usageBytes: 3e11, users: [] },
  ];
}

export function mediaStorageEvent(overrides: Partial<MediaStorageSnapshot> = {}): MediaStorageSnapshot {
  return {
    at: at(), thresholds: { freePercent: 10, hysteresisPercent: 2 },
    paths: [
      { path: '/mnt/media', ok: true, totalBytes: 4e12, usedBytes: 3e12, freeBytes: 1e12, usedPercent: 75, freePercent: 25, low: false },
      { path: '/mnt/downloads', ok: true, totalBytes: 1e12, usedBytes: 9.5e11, freeBytes: 5e10, usedPercent: 95, freePercent: 5, low: true },
      { path: '/mnt/photos', ok: false, error: 'missing', low: false },
    ],
    ...overrides,
  };
}

export function mediaDownloadEvent(phase: MediaDownloadEvent['phase'], overrides: Partial<MediaDownloadEvent> = {}): MediaDownloadEvent {
  return { downloadId: 'abc123', phase, source: 'sonarr', kind: 'sonarr', via: 'poll', at: at(), title: 'Some.Show.S01E01.1080p', ...overrides };
}

export function mediaStreamEvent(overrides: Partial<MediaStreamEvent> = {}): MediaStreamEvent {
  return {
    key: 'dev1:item1', deviceId: 'dev1', user: 'alice', item: { id: 'item1', name: 'A Movie', type: 'Movie' }, playMethod: 'Transcode',
    source: 'jellyfin', via: 'poll', at: at(), startedAt: at(-60_000), ...overrides,
  };
}

export function mediaServiceErrorEvent(overrides: Partial<MediaServiceError> = {}): MediaServiceError {
  return { source: 'radarr', kind: 'radarr', reason: 'unreachable', message: 'connect ECONNREFUSED 127.0.0.1:7878', at: at(), since: at(), ...overrides };
}

export function mediaServiceRecoveredEvent(overrides: Partial<MediaServiceRecovered> = {}): MediaServiceRecovered {
  return { source: 'radarr', kind: 'radarr', at: at(), since: at(-30_000), downMs: 30_000, lastReason: 'unreachable', ...overrides };
}

export function mediaStorageAlertEvent(state: 'low' | 'recovered', overrides: Partial<MediaStorageAlert> = {}): MediaStorageAlert {
  return { path: '/mnt/downloads', state, at: at(), freeBytes: 5e10, totalBytes: 1e12, freePercent: 5, thresholdPercent: 10, ...overrides };
}

export function mediaWebhookEvent(overrides: Partial<MediaWebhookEvent> = {}): MediaWebhookEvent {
  return { source: 'sonarr', kind: 'sonarr', eventType: 'Download', at: at(), payload: { eventType: 'Download' }, ...overrides };
}
