import { afterEach, describe, expect, it } from 'vitest';
import { eventValidator, type CircuitChanged, type MediaStatus } from '@homelab/bus';
import { parseConfig } from '@homelab/config';
import { metricsOptionsFromConfig } from './metrics.ts';
import {
  CircuitValue, ERROR_TYPE_OTHER, GatewayAttr as GW, GatewayMetric, GenAiAttr as A, GenAiBuckets, GenAiMetric, HealthAttr, HealthMetric, HealthValue,
  MediaAttr as M, MediaMetric, OTHER, TokenType,
} from './semconv.ts';
import {
  completedEvent, healthChangedEvent, healthProbeEvent, mediaDownloadEvent, mediaLibraryEvents, mediaQueueEvent, mediaServiceErrorEvent,
  mediaServiceRecoveredEvent, mediaSessionsEvent, mediaStorageAlertEvent, mediaStorageEvent, mediaStreamEvent, mediaTransferEvent, mediaWebhookEvent,
  metricsHarness, type MetricsHarness,
} from './testkit.ts';

let h: MetricsHarness;
afterEach(async () => { await h?.shutdown(); });

/** Every fixture is checked against the real schema of its subject, so the tests feed what the services publish. */
function valid<T>(subject: string, payload: T): T {
  eventValidator(subject)!.parse(payload);
  return payload;
}

describe('inference metrics (GenAI semantic conventions)', () => {
  it('records tokens, duration, time to first token and time per output token of a streamed answer', async () => {
    h = metricsHarness();
    h.metrics.applyInferenceEvent(valid('inference.completed', completedEvent()));
    const base = { [A.operationName]: 'chat', [A.providerName]: 'vllm', [A.requestModel]: 'smart', [A.responseModel]: 'Qwen/Qwen2.5-7B-Instruct' };

    const input = await h.point(GenAiMetric.tokenUsage, { ...base, [A.tokenType]: TokenType.input });
    expect(input).toMatchObject({ count: 1, sum: 26 });
    expect(input.buckets!.boundaries).toEqual(GenAiBuckets.tokenUsage);
    expect((await h.point(GenAiMetric.tokenUsage, { [A.tokenType]: TokenType.output })).sum).toBe(282);

    const duration = await h.point(GenAiMetric.operationDuration, base);
    expect(duration.sum).toBeCloseTo(0.8124, 6);
    expect(duration.buckets!.boundaries).toEqual(GenAiBuckets.operationDuration);
    expect(duration.attributes[A.errorType]).toBeUndefined();
    // 0.8124 s falls in (0.64, 1.28].
    expect(duration.buckets!.counts[GenAiBuckets.operationDuration.indexOf(1.28)]).toBe(1);

    const ttft = await h.point(GenAiMetric.timeToFirstToken, base);
    expect(ttft.sum).toBeCloseTo(0.0951, 6);
    expect(ttft.buckets!.boundaries).toEqual(GenAiBuckets.timeToFirstToken);
    const tpot = await h.point(GenAiMetric.timePerOutputToken, base);
    expect(tpot.sum).toBeCloseTo((810.9 - 95.1) / 281 / 1000, 9);
    expect(tpot.buckets!.boundaries).toEqual(GenAiBuckets.timePerOutputToken);

    expect((await h.point(GatewayMetric.overhead, { [A.providerName]: 'vllm' })).sum).toBeCloseTo(0.0015, 9);
    expect((await h.point(GatewayMetric.requests)).attributes).toEqual({
      ...base, [GW.route]: 'alias', [GW.fallback]: 'false', [GW.stream]: 'true', [GW.status]: 'ok', [GW.dialect]: 'openai.chat',
    });
  });

  it('requests carry the API the client spoke', async () => {
    h = metricsHarness();
    h.metrics.applyInferenceEvent(completedEvent({ dialect: 'anthropic.messages' }));
    h.metrics.applyInferenceEvent(completedEvent({ dialect: 'anthropic.messages', stream: false }));
    h.metrics.applyInferenceEvent(completedEvent({ dialect: 'ollama.chat' }));
    const points = await h.points(GatewayMetric.requests);
    const byDialect = new Map<unknown, number>();
    for (const p of points) byDialect.set(p.attributes[GW.dialect], (byDialect.get(p.attributes[GW.dialect]) ?? 0) + Number(p.value));
    expect(Object.fromEntries(byDialect)).toEqual({ 'anthropic.messages': 2, 'ollama.chat': 1 });
  });

  it('a non-streamed answer has no time to first token; embeddings count input tokens only', async () => {
    h = metricsHarness();
    h.metrics.applyInferenceEvent(valid('inference.completed', completedEvent({ stream: false, ttftMs: 800 })));
    h.metrics.applyInferenceEvent(valid('inference.completed', completedEvent({
      operation: 'embeddings', stream: false, requestedModel: 'vllm/BAAI/bge-small-en-v1.5', model: 'BAAI/bge-small-en-v1.5', responseModel: 'BAAI/bge-small-en-v1.5',
      routeReason: 'explicit:vllm > vllm', ttftMs: undefined, outputTokens: undefined, inputTokens: 9,
    })));
    expect(await h.points(GenAiMetric.timeToFirstToken)).toEqual([]);
    expect(await h.points(GenAiMetric.timePerOutputToken)).toEqual([]);
    expect(await h.points(GenAiMetric.tokenUsage, { [A.operationName]: 'embeddings', [A.tokenType]: TokenType.output })).toEqual([]);
    expect((await h.point(GenAiMetric.tokenUsage, { [A.operationName]: 'embeddings', [A.tokenType]: TokenType.input })).sum).toBe(9);
    expect((await h.point(GatewayMetric.requests, { [A.operationName]: 'embeddings' })).attributes[GW.route]).toBe('explicit');
  });

  it('a failed request carries error.type, and a router failure has no backend', async () => {
    h = metricsHarness();
    h.metrics.applyInferenceEvent(valid('inference.completed', {
      requestId: 'req_x', operation: 'chat', stream: true, requestedModel: 'smart', status: 'error', httpStatus: 503, errorType: 'no_backend',
      attempts: 2, routeReason: 'alias:smart > vllm backend_unavailable > ollama no worker', latencyMs: 40, finishedAt: new Date().toISOString(),
    }));
    h.metrics.applyInferenceEvent(valid('inference.completed', completedEvent({
      status: 'error', httpStatus: 502, errorType: 'backend_error', truncated: true, outputTokens: 10,
    })));
    const failed = await h.point(GenAiMetric.operationDuration, { [A.errorType]: 'no_backend' });
    expect(failed.attributes).toMatchObject({ [A.providerName]: 'none', [A.requestModel]: 'smart' });
    expect(failed.attributes[A.responseModel]).toBeUndefined();
    expect(await h.point(GatewayMetric.requests, { [GW.status]: 'error', [A.errorType]: 'no_backend', [GW.fallback]: 'true' })).toMatchObject({ value: 1 });
    // A stream cut after content: an error, so no TTFT (the conventions record it for successful answers only).
    expect(await h.points(GenAiMetric.timeToFirstToken)).toEqual([]);
    expect((await h.point(GenAiMetric.tokenUsage, { [A.errorType]: undefined as never, [A.tokenType]: 'output' })).sum).toBe(10);
  });

  it('a client that hung up is counted as cancelled, not as an error', async () => {
    h = metricsHarness();
    h.metrics.applyInferenceEvent(valid('inference.completed', completedEvent({ status: 'cancelled', httpStatus: 499, outputTokens: 12, truncated: true })));
    h.metrics.applyInferenceEvent(valid('inference.completed', completedEvent({ status: 'error', httpStatus: 502, errorType: 'backend_error' })));
    h.metrics.applyInferenceEvent(valid('inference.completed', completedEvent()));
    const byStatus = (await h.points(GatewayMetric.requests)).map((p) => `${p.attributes[GW.status]}:${p.attributes[A.errorType] ?? '-'}:${p.value}`).sort();
    expect(byStatus).toEqual(['cancelled:-:1', 'error:backend_error:1', 'ok:-:1']);
    const cancelled = await h.point(GenAiMetric.operationDuration, { [A.errorType]: undefined as never, [A.responseModel]: undefined as never });
    expect(cancelled.attributes[A.errorType]).toBeUndefined();
    // No time to first token for an answer nobody received in full.
    expect((await h.point(GenAiMetric.timeToFirstToken)).count).toBe(1);
  });

  it('reads fallbacks, retries and skipped candidates from the route reason, never the raw string', async () => {
    h = metricsHarness();
    const routeReason = 'alias:smart > anthropic not configured > vllm circuit open > ollama backend_unavailable > ollama first-token timeout > vllm rate limited > openai';
    h.metrics.applyInferenceEvent(valid('inference.completed', completedEvent({ backend: 'openai', routeReason, attempts: 3, model: 'gpt-4.1-mini', responseModel: 'gpt-4.1-mini' })));
    expect(await h.point(GatewayMetric.retries)).toMatchObject({ value: 1, attributes: { [A.providerName]: 'ollama', [GW.reason]: 'backend_unavailable' } });
    expect(await h.point(GatewayMetric.fallbacks)).toMatchObject({ value: 1, attributes: { [GW.from]: 'ollama', [GW.to]: 'openai', [GW.reason]: 'timeout' } });
    const skips = await h.points(GatewayMetric.routeSkips);
    expect(skips.map((p) => `${p.attributes[A.providerName]}:${p.attributes[GW.reason]}`).sort()).toEqual(['anthropic:not_configured', 'vllm:circuit_open', 'vllm:rate_limited']);
    const req = await h.point(GatewayMetric.requests);
    expect(req.attributes).toMatchObject({ [GW.fallback]: 'true', [A.providerName]: 'openai', [GW.route]: 'alias' });
    for (const [, metric] of await h.collect()) {
      for (const dp of metric.dataPoints) for (const v of Object.values(dp.attributes)) expect(String(v)).not.toMatch(/ > |req_|4bf92f35/);
    }
  });

  it('estimates cost from the price table: provider/model, then provider/*', async () => {
    h = metricsHarness({ prices: { 'openai/gpt-4.1-mini': { input: 0.4, output: 1.6 }, 'anthropic/*': { input: 3, output: 15 } } });
    h.metrics.applyInferenceEvent(completedEvent({ backend: 'openai', model: 'gpt-4.1-mini', responseModel: 'gpt-4.1-mini-2025-04-14', requestedModel: 'gpt-4.1-mini', inputTokens: 1000, outputTokens: 500 }));
    h.metrics.applyInferenceEvent(completedEvent({ backend: 'anthropic', model: 'claude-haiku-4-5', responseModel: 'claude-haiku-4-5', requestedModel: 'claude-haiku-4-5', inputTokens: 2000, outputTokens: 100 }));
    h.metrics.applyInferenceEvent(completedEvent());
    expect((await h.point(GatewayMetric.cost, { [A.providerName]: 'openai' })).value).toBeCloseTo((1000 * 0.4 + 500 * 1.6) / 1e6, 12);
    expect((await h.point(GatewayMetric.cost, { [A.providerName]: 'anthropic' })).value).toBeCloseTo((2000 * 3 + 100 * 15) / 1e6, 12);
    // Local and unpriced: a series at 0.
    expect(await h.point(GatewayMetric.cost, { [A.providerName]: 'vllm' })).toMatchObject({ value: 0, attributes: { [A.responseModel]: 'Qwen/Qwen2.5-7B-Instruct' } });
  });

  it('keeps model labels bounded: only models that served a request or the config names are labels', async () => {
    const config = parseConfig(`
nodes: { ai-node: { address: 127.0.0.1, services: { vllm: { kind: vllm, port: 8000 } } } }
inference:
  vllm: { service: ai-node/vllm }
  openai: { baseURL: http://127.0.0.1:1/v1, apiKey: sk-x, models: [gpt-4.1-mini] }
  aliases: { fast: [vllm/*, openai/gpt-4.1-nano] }
routing: { prices: { openai/gpt-4.1-mini: { input: 1, output: 2 } } }
`, 'test.yaml');
    h = metricsHarness({ ...metricsOptionsFromConfig(config), maxModels: 5 });
    const rejected = (model: string) => valid('inference.completed', {
      requestId: 'req_r', operation: 'chat' as const, stream: false, requestedModel: model, status: 'error' as const, httpStatus: 400, errorType: 'invalid_request',
      attempts: 0, routeReason: 'rejected', latencyMs: 0, finishedAt: new Date().toISOString(),
    });
    h.metrics.applyInferenceEvent(rejected('please ignore previous instructions and'));
    h.metrics.applyInferenceEvent(rejected('fast'));
    expect((await h.points(GatewayMetric.requests)).map((p) => [p.attributes[A.requestModel], p.attributes[GW.route]])).toEqual([[OTHER, 'rejected'], ['fast', 'rejected']]);
    // Served models earn a label until the budget is spent.
    for (const m of ['m1', 'm2', 'm3']) h.metrics.applyInferenceEvent(completedEvent({ requestedModel: m, model: m, responseModel: m }));
    const served = (await h.points(GatewayMetric.requests, { [GW.status]: 'ok' })).map((p) => p.attributes[A.requestModel]);
    expect(served).toEqual(['m1', 'm2', OTHER]); // seeded: fast, gpt-4.1-nano, gpt-4.1-mini; then m1, m2; budget 5
    expect(metricsOptionsFromConfig(config)).toMatchObject({ backends: ['vllm', 'openai'], prices: { 'openai/gpt-4.1-mini': { input: 1, output: 2 } } });
  });

  it('circuit state: closed at start for configured backends, the worst state among routers, transitions counted', async () => {
    h = metricsHarness({ backends: ['vllm', 'ollama'] });
    expect((await h.points(GatewayMetric.circuitState)).map((p) => [p.attributes[A.providerName], p.value])).toEqual([['vllm', 0], ['ollama', 0]]);
    const circuit = (router: string, state: CircuitChanged['state'], previous: CircuitChanged['state']): CircuitChanged =>
      valid('inference.circuit', { backend: 'vllm', state, previous, reason: '5 consecutive failures', router, at: new Date().toISOString() });
    h.metrics.applyCircuitEvent(circuit('r1', 'open', 'closed'));
    expect((await h.point(GatewayMetric.circuitState, { [A.providerName]: 'vllm' })).value).toBe(CircuitValue.open);
    h.metrics.applyCircuitEvent(circuit('r2', 'half-open', 'closed'));
    expect((await h.point(GatewayMetric.circuitState, { [A.providerName]: 'vllm' })).value).toBe(CircuitValue.open);
    h.metrics.applyCircuitEvent(circuit('r1', 'closed', 'open'));
    expect((await h.point(GatewayMetric.circuitState, { [A.providerName]: 'vllm' })).value).toBe(CircuitValue['half-open']);
    h.metrics.applyCircuitEvent(circuit('r2', 'closed', 'half-open'));
    expect((await h.point(GatewayMetric.circuitState, { [A.providerName]: 'vllm' })).value).toBe(CircuitValue.closed);
    expect((await h.point(GatewayMetric.circuitTransitions, { [GW.state]: 'closed' })).value).toBe(2);
  });
});

describe('health metrics', () => {
  it('a state change sets the state gauge, the time it began, and counts the change', async () => {
    h = metricsHarness();
    const since = new Date(Date.now() - 1000).toISOString();
    h.metrics.applyHealthEvent(valid('health.ai-node.vllm', healthChangedEvent({ state: 'down', previous: 'up', since })));
    const target = { [HealthAttr.node]: 'ai-node', [HealthAttr.service]: 'vllm', [HealthAttr.kind]: 'vllm' };
    expect(await h.point(HealthMetric.state, target)).toMatchObject({ value: HealthValue.down });
    expect((await h.point(HealthMetric.stateSince, target)).value).toBe(Date.parse(since) / 1000);
    expect(await h.point(HealthMetric.stateChanges, { ...target, [HealthAttr.state]: 'down', [HealthAttr.previous]: 'up' })).toMatchObject({ value: 1 });
  });

  it('probe results: counts, latency histogram and gauge; the newest news wins over a replayed older one', async () => {
    h = metricsHarness();
    const t0 = Date.now();
    h.metrics.applyHealthEvent(valid('health.probe.ai-node.vllm', healthProbeEvent({ outcome: 'ok', state: 'up', latencyMs: 12.5, at: new Date(t0).toISOString() })));
    h.metrics.applyHealthEvent(valid('health.probe.ai-node.vllm', healthProbeEvent({ outcome: 'fail', state: 'degraded', latencyMs: null, error: 'timeout', at: new Date(t0 + 1000).toISOString() })));
    // An older state change (read from the other stream later) does not move the state back.
    h.metrics.applyHealthEvent(healthChangedEvent({ state: 'up', previous: 'down', since: new Date(t0 - 5000).toISOString() }));
    expect((await h.point(HealthMetric.state)).value).toBe(HealthValue.degraded);
    expect(await h.point(HealthMetric.probes, { [HealthAttr.outcome]: 'ok' })).toMatchObject({ value: 1 });
    expect(await h.point(HealthMetric.probes, { [HealthAttr.outcome]: 'fail' })).toMatchObject({ value: 1 });
    expect((await h.point(HealthMetric.probeDuration, { [HealthAttr.outcome]: 'ok' })).sum).toBeCloseTo(0.0125, 9);
    expect(await h.points(HealthMetric.probeDuration, { [HealthAttr.outcome]: 'fail' })).toEqual([]);
    expect((await h.point(HealthMetric.probeLatency)).value).toBeCloseTo(0.0125, 9);
    expect((await h.point(HealthMetric.stateChanges)).value).toBe(1);
  });

  it('starts from the health.status snapshot, unknown included', async () => {
    h = metricsHarness();
    const now = new Date().toISOString();
    const target = (service: string, state: 'up' | 'unknown') => ({
      key: `media-node.${service}`, node: 'media-node', service, kind: service, probe: 'http', target: null, state, since: now, lastCheck: state === 'up' ? now : null,
      latencyMs: state === 'up' ? 30 : null, error: null, probed: state === 'up', streaks: { fail: 0, ok: 1, notOk: 0, notFail: 1 },
    });
    h.metrics.applyHealthSnapshot({ targets: [target('sonarr', 'up'), target('comfyui', 'unknown')] });
    expect((await h.point(HealthMetric.state, { [HealthAttr.service]: 'sonarr' })).value).toBe(HealthValue.up);
    expect((await h.point(HealthMetric.state, { [HealthAttr.service]: 'comfyui' })).value).toBe(HealthValue.unknown);
  });
});

describe('media metrics', () => {
  it('queue snapshots: downloads by status and phase; a status that emptied reads 0; an older snapshot is ignored', async () => {
    h = metricsHarness();
    const first = mediaQueueEvent([{ status: 'downloading', phase: 'downloading' }, { status: 'downloading', phase: 'downloading' }, { status: 'completed', phase: 'completed' }]);
    h.metrics.applyMediaEvent('mediaQueue', valid('media.queue', first));
    const src = { [M.source]: 'sonarr', [M.kind]: 'sonarr' };
    expect((await h.point(MediaMetric.queueItems, { ...src, [M.status]: 'downloading', [M.phase]: 'downloading' })).value).toBe(2);
    expect((await h.point(MediaMetric.queueItems, { [M.status]: 'completed' })).attributes).toMatchObject({ [M.downloadStatus]: 'ok', [M.downloadState]: 'importPending' });
    expect((await h.point(MediaMetric.downloadsActive, src)).value).toBe(2);
    expect((await h.point(MediaMetric.queueRecords, src)).value).toBe(3);
    h.metrics.applyMediaEvent('mediaQueue', valid('media.queue', mediaQueueEvent([{ status: 'completed', phase: 'imported' }], { at: new Date(Date.now() + 1000).toISOString() })));
    expect((await h.point(MediaMetric.queueItems, { [M.status]: 'downloading' })).value).toBe(0);
    expect((await h.point(MediaMetric.queueItems, { [M.status]: 'completed', [M.phase]: 'completed' })).value).toBe(0);
    expect((await h.point(MediaMetric.queueItems, { [M.phase]: 'imported' })).value).toBe(1);
    h.metrics.applyMediaEvent('mediaQueue', first); // replayed, older
    expect((await h.point(MediaMetric.queueItems, { [M.phase]: 'imported' })).value).toBe(1);
    expect((await h.point(MediaMetric.downloadsActive, src)).value).toBe(0);
  });

  it('transfer: speeds by direction, torrents by state, active downloads', async () => {
    h = metricsHarness();
    h.metrics.applyMediaEvent('mediaTransfer', valid('media.transfer', mediaTransferEvent()));
    expect((await h.point(MediaMetric.transferSpeed, { [M.direction]: 'download' })).value).toBe(2_500_000);
    expect((await h.point(MediaMetric.transferSpeed, { [M.direction]: 'upload' })).value).toBe(300_000);
    expect((await h.point(MediaMetric.torrents, { [M.status]: 'seeding' })).value).toBe(2);
    expect((await h.point(MediaMetric.downloadsActive, { [M.kind]: 'qbittorrent' })).value).toBe(2);
  });

  it('sessions and streams by play method, without user or device labels', async () => {
    h = metricsHarness();
    h.metrics.applyMediaEvent('mediaSessions', valid('media.sessions', mediaSessionsEvent(['Transcode', 'DirectPlay', 'Transcode', undefined])));
    expect((await h.point(MediaMetric.sessions)).value).toBe(5);
    const streams = await h.points(MediaMetric.streamsActive);
    expect(Object.fromEntries(streams.map((p) => [p.attributes[M.playMethod], p.value]))).toEqual({ Transcode: 2, DirectPlay: 1, unknown: 1 });
    expect(streams.every((p) => Object.keys(p.attributes).sort().join() === 'play_method,source')).toBe(true);
    h.metrics.applyMediaEvent('mediaSessions', mediaSessionsEvent([], { at: new Date(Date.now() + 1000).toISOString() }));
    expect(Object.fromEntries((await h.points(MediaMetric.streamsActive)).map((p) => [p.attributes[M.playMethod], p.value]))).toEqual({ Transcode: 0, DirectPlay: 0, unknown: 0 });
    h.metrics.applyMediaEvent('mediaStreamStarted', valid('media.stream.started', mediaStreamEvent()));
    h.metrics.applyMediaEvent('mediaStreamStopped', valid('media.stream.stopped', mediaStreamEvent({ stoppedAt: new Date().toISOString(), durationMs: 1_800_000 })));
    expect(await h.point(MediaMetric.streams, { [M.playMethod]: 'Transcode' })).toMatchObject({ value: 1 });
    expect((await h.point(MediaMetric.streamDuration)).sum).toBe(1800);
  });

  it('library: *arr missing and health, Prowlarr indexers, Jellyfin counts, Immich photos and videos', async () => {
    h = metricsHarness();
    for (const e of mediaLibraryEvents()) h.metrics.applyMediaEvent('mediaLibrary', valid('media.library', e));
    expect((await h.point(MediaMetric.libraryMissing, { [M.source]: 'sonarr' })).value).toBe(12);
    expect((await h.point(MediaMetric.libraryCutoffUnmet, { [M.source]: 'sonarr' })).value).toBe(3);
    expect((await h.point(MediaMetric.healthIssues, { [M.source]: 'sonarr' })).value).toBe(1);
    expect((await h.point(MediaMetric.rootFolderFree, { [M.path]: '/mnt/media' })).value).toBe(4e11);
    expect(Object.fromEntries((await h.points(MediaMetric.indexers)).map((p) => [p.attributes[M.state], p.value]))).toEqual({ enabled: 4, disabled: 1, unavailable: 1 });
    const items = await h.points(MediaMetric.libraryItems);
    expect(Object.fromEntries(items.map((p) => [`${p.attributes[M.kind]}:${p.attributes[M.type]}`, p.value]))).toEqual({
      'jellyfin:movie': 420, 'jellyfin:series': 37, 'jellyfin:episode': 1234, 'immich:photo': 25_000, 'immich:video': 800,
    });
    expect((await h.point(MediaMetric.librarySize, { [M.source]: 'immich' })).value).toBe(3e11);
  });

  it('storage: used, free and size per path, low flag, alerts', async () => {
    h = metricsHarness();
    h.metrics.applyMediaEvent('mediaStorage', valid('media.storage', mediaStorageEvent()));
    expect((await h.point(MediaMetric.storageUsed, { [M.path]: '/mnt/media' })).value).toBe(3e12);
    expect((await h.point(MediaMetric.storageFree, { [M.path]: '/mnt/media' })).value).toBe(1e12);
    expect((await h.point(MediaMetric.storageSize, { [M.path]: '/mnt/downloads' })).value).toBe(1e12);
    expect((await h.point(MediaMetric.storageLow, { [M.path]: '/mnt/downloads' })).value).toBe(1);
    expect(await h.points(MediaMetric.storageUsed, { [M.path]: '/mnt/photos' })).toEqual([]); // missing: no numbers
    // Used share as df (and `homelab media`) count it: used / (used + available); blocks reserved for root are in neither.
    h.metrics.applyMediaEvent('mediaStorage', valid('media.storage', mediaStorageEvent({
      at: new Date(Date.now() + 1000).toISOString(),
      paths: [{ path: '/mnt/media', ok: true, totalBytes: 1000, usedBytes: 600, freeBytes: 300, usedPercent: 66.67, freePercent: 33.33, low: false }],
    })));
    expect((await h.point(MediaMetric.storageUsedRatio, { [M.path]: '/mnt/media' })).value).toBeCloseTo(600 / 900, 9);
    h.metrics.applyMediaEvent('mediaStorageRecovered', valid('media.storage.recovered', mediaStorageAlertEvent('recovered')));
    expect((await h.point(MediaMetric.storageLow, { [M.path]: '/mnt/downloads' })).value).toBe(0);
    expect(await h.point(MediaMetric.storageAlerts, { [M.state]: 'recovered' })).toMatchObject({ value: 1 });
  });

  it('downloads, service errors and recoveries, webhooks', async () => {
    h = metricsHarness();
    for (const phase of ['grabbed', 'completed', 'imported'] as const) {
      h.metrics.applyMediaEvent('mediaDownloadGrabbed', valid(`media.download.${phase}`, mediaDownloadEvent(phase)));
    }
    expect((await h.points(MediaMetric.downloads)).map((p) => p.attributes[M.phase])).toEqual(['grabbed', 'completed', 'imported']);
    h.metrics.applyMediaEvent('mediaServiceError', valid('media.service.error', mediaServiceErrorEvent()));
    expect(await h.point(MediaMetric.serviceErrors, { [M.source]: 'radarr', [M.reason]: 'unreachable' })).toMatchObject({ value: 1 });
    expect((await h.point(MediaMetric.serviceUp, { [M.source]: 'radarr' })).value).toBe(0);
    h.metrics.applyMediaEvent('mediaServiceRecovered', valid('media.service.recovered', mediaServiceRecoveredEvent()));
    expect((await h.point(MediaMetric.serviceUp, { [M.source]: 'radarr' })).value).toBe(1);
    h.metrics.applyMediaEvent('mediaWebhook', valid('media.webhook.sonarr', mediaWebhookEvent()));
    expect(await h.point(MediaMetric.webhooks, { [M.eventType]: 'Download' })).toMatchObject({ value: 1 });
  });

  it('a target whose snapshots arrive is up, though it never failed; a failing one stays down until it recovers', async () => {
    h = metricsHarness();
    const later = (ms: number): string => new Date(Date.now() + ms).toISOString();
    h.metrics.applyMediaEvent('mediaQueue', valid('media.queue', mediaQueueEvent([{ status: 'downloading', phase: 'downloading' }])));
    expect((await h.point(MediaMetric.serviceUp, { [M.source]: 'sonarr' })).value).toBe(1);
    h.metrics.applyMediaEvent('mediaServiceError', valid('media.service.error', mediaServiceErrorEvent({ source: 'sonarr', kind: 'sonarr' })));
    h.metrics.applyMediaEvent('mediaQueue', valid('media.queue', mediaQueueEvent([{ status: 'downloading', phase: 'downloading' }], { at: later(1000) })));
    expect((await h.point(MediaMetric.serviceUp, { [M.source]: 'sonarr' })).value).toBe(0);
    h.metrics.applyMediaEvent('mediaServiceRecovered', valid('media.service.recovered', mediaServiceRecoveredEvent({ source: 'sonarr', kind: 'sonarr' })));
    h.metrics.applyMediaEvent('mediaQueue', valid('media.queue', mediaQueueEvent([{ status: 'downloading', phase: 'downloading' }], { at: later(2000) })));
    expect((await h.point(MediaMetric.serviceUp, { [M.source]: 'sonarr' })).value).toBe(1);
  });

  it('starts from the media.status reply', async () => {
    h = metricsHarness();
    const status: MediaStatus = {
      at: new Date().toISOString(),
      targets: [{ name: 'sonarr', kind: 'sonarr', intervalMs: 30_000, ok: true }, { name: 'radarr', kind: 'radarr', intervalMs: 30_000, ok: false }],
      queue: [mediaQueueEvent([{ status: 'downloading', phase: 'downloading' }])], transfer: [mediaTransferEvent()], sessions: [mediaSessionsEvent(['DirectPlay'])],
      library: mediaLibraryEvents(), storage: mediaStorageEvent(), webhooks: { enabled: false },
    };
    h.metrics.applyMediaStatus(status);
    expect((await h.point(MediaMetric.serviceUp, { [M.source]: 'radarr' })).value).toBe(0);
    expect((await h.point(MediaMetric.serviceUp, { [M.source]: 'sonarr' })).value).toBe(1);
    expect((await h.point(MediaMetric.queueItems)).value).toBe(1);
    expect((await h.point(MediaMetric.streamsActive, { [M.playMethod]: 'DirectPlay' })).value).toBe(1);
    expect((await h.point(MediaMetric.storageFree, { [M.path]: '/mnt/downloads' })).value).toBe(5e10);
  });
});

it('error.type falls back to the conventions\' _OTHER', async () => {
  h = metricsHarness();
  h.metrics.applyInferenceEvent(completedEvent({ status: 'error', httpStatus: 500 }));
  expect((await h.point(GenAiMetric.operationDuration)).attributes[A.errorType]).toBe(ERROR_TYPE_OTHER);
});
