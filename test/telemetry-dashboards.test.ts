import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EventPublisher, ReplyMux, inboxPrefixOf, eventValidator, healthEventSubject, healthProbeSubject, imageEventSubject, mediaWebhookSubject, Subjects,
  type EventKey, type EventPayload,
} from '@homelab/bus';
import { connectAs, REPO_ROOT, startTestStack, type TestStack } from '@homelab/testing';
import { GatewayMetric, GenAiAttr, GenAiMetric, HealthMetric, ImageMetric, MediaMetric, TelemetryMetric } from '@homelab/telemetry/semconv';
import {
  healthChangedEvent, healthProbeEvent, mediaDownloadEvent, mediaLibraryEvents, mediaQueueEvent, mediaServiceErrorEvent, mediaServiceRecoveredEvent,
  mediaSessionsEvent, mediaStorageAlertEvent, mediaStorageEvent, mediaStreamEvent, mediaTransferEvent, mediaWebhookEvent,
} from '@homelab/telemetry/testkit';
import { chat, embed, sampleSum, startPrometheus, startTelemetry, waitFor, type RunningTelemetry, type TestPrometheus } from './telemetry-kit.ts';

interface Target { refId: string; expr: string; datasource?: { type: string; uid: string } }
interface Panel { id: number; type: string; title: string; datasource?: { type: string; uid: string }; targets?: Target[]; panels?: Panel[] }
interface Dashboard { uid: string; title: string; panels: Panel[]; templating: { list: { name: string; type: string; query: string }[] } }

const DASHBOARD_DIR = join(REPO_ROOT, 'deploy', 'grafana', 'dashboards');
const dashboards = readdirSync(DASHBOARD_DIR).filter((f) => f.endsWith('.json')).map((file) => ({
  file, dashboard: JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8')) as Dashboard,
}));
const panelsOf = (d: Dashboard): Panel[] => d.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
const queries = dashboards.flatMap(({ file, dashboard }) => panelsOf(dashboard).flatMap((panel) => (panel.targets ?? []).map((t) => ({ file, panel: panel.title, expr: t.expr }))));

/** Grafana's built-in variables, as Grafana would fill them for a recent time range. */
function grafanaExpr(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s').replaceAll('$__range', '10m');
}

/** Every metric family the telemetry service serves, by its Prometheus name (samples add `_bucket`, `_total`…). */
const counters = new Set<string>([
  GatewayMetric.requests, GatewayMetric.fallbacks, GatewayMetric.retries, GatewayMetric.routeSkips, GatewayMetric.cost, GatewayMetric.circuitTransitions,
  HealthMetric.stateChanges, HealthMetric.probes, MediaMetric.downloads, MediaMetric.streams, MediaMetric.storageAlerts, MediaMetric.serviceErrors,
  MediaMetric.webhooks, TelemetryMetric.events,
  ImageMetric.submitted, ImageMetric.jobs, ImageMetric.images, ImageMetric.failures, ImageMetric.takeovers, ImageMetric.cost,
]);
const histograms = new Set<string>([
  ...Object.values(GenAiMetric).map((n) => n.replaceAll('.', '_')), GatewayMetric.overhead, HealthMetric.probeDuration, MediaMetric.streamDuration,
  ImageMetric.queueWait, ImageMetric.duration, ImageMetric.stepsPerSecond,
]);
const families = [...Object.values(GenAiMetric).map((n) => n.replaceAll('.', '_')), ...Object.values(GatewayMetric), ...Object.values(HealthMetric), ...Object.values(MediaMetric), ...Object.values(ImageMetric), ...Object.values(TelemetryMetric)];
const sampleNames = new Set(families.flatMap((f) => (counters.has(f) ? [`${f}_total`] : histograms.has(f) ? [`${f}_bucket`, `${f}_sum`, `${f}_count`] : [f])));

describe('Grafana dashboards (static)', () => {
  it('three dashboards, unique uids, provisioned from the folder docker-compose mounts', () => {
    expect(dashboards.map((d) => d.dashboard.title).sort()).toEqual(['AI gateway', 'Lab health', 'Media']);
    expect(new Set(dashboards.map((d) => d.dashboard.uid)).size).toBe(3);
    const provider = parse(readFileSync(join(REPO_ROOT, 'deploy/grafana/provisioning/dashboards/homelab.yml'), 'utf8')) as { providers: { options: { path: string } }[] };
    const compose = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, { volumes?: string[]; ports?: string[]; environment?: Record<string, string> }> };
    expect(compose.services['grafana']!.volumes).toContain(`./deploy/grafana/dashboards:${provider.providers[0]!.options.path}:ro`);
    // /metrics is for Prometheus on the compose network; on the host only loopback sees it.
    expect(compose.services['telemetry']!.ports).toContain('127.0.0.1:9464:9464');
    expect(compose.services['telemetry']!.environment).toMatchObject({ NATS_USER: 'telemetry' });
    const prometheus = parse(readFileSync(join(REPO_ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8')) as { scrape_configs: { static_configs: { targets: string[] }[] }[] };
    expect(prometheus.scrape_configs.flatMap((s) => s.static_configs.flatMap((c) => c.targets))).toContain('telemetry:9464');
  });

  it.each(dashboards)('$file works on first import: a datasource variable, every panel and query uses it', ({ dashboard }) => {
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource', query: 'prometheus' }));
    for (const panel of panelsOf(dashboard)) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const t of panel.targets!) {
        expect(t.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
        expect(t.expr, panel.title).toMatch(/\S/);
      }
    }
  });

  it('every metric a panel queries is one telemetry serves', () => {
    const labels = new Set(Object.values(GenAiAttr).map((a) => a.replaceAll('.', '_')));
    const unknown = queries.flatMap((q) => [...q.expr.matchAll(/\b((?:gen_ai|homelab)_[a-z0-9_]+)\b/g)].map((m) => m[1]!)
      .filter((n) => !sampleNames.has(n) && !labels.has(n)).map((n) => `${q.file} "${q.panel}": ${n}`));
    expect(unknown).toEqual([]);
  });

  it('docs/telemetry.md lists every metric', () => {
    const doc = readFileSync(join(REPO_ROOT, 'docs', 'telemetry.md'), 'utf8');
    expect(families.filter((f) => !doc.includes(`\`${f}`))).toEqual([]);
  });
});

// ------------------------------------------------------------------ the dashboards against a real Prometheus

let stack: TestStack;
let telemetry: RunningTelemetry;
let prometheus: TestPrometheus;

beforeAll(async () => {
  stack = await startTestStack({ tokens: 8 });
  telemetry = await startTelemetry(stack);
  prometheus = await startPrometheus([`127.0.0.1:${telemetry.port}`]);
}, 90_000);
afterAll(async () => {
  await prometheus?.[Symbol.asyncDispose]();
  await stack?.[Symbol.asyncDispose]();
});

/** Publishes an event as its service would, after checking it against the subject's schema. */
async function publish<K extends EventKey>(events: EventPublisher, key: K, payload: EventPayload<K>, subject?: string): Promise<void> {
  eventValidator(subject ?? Subjects[key].subject)!.parse(payload);
  await events.publish(key, payload, subject ? { subject } : {});
}

/** One round of everything the dashboards show: inference traffic, a health transition, media events, image jobs. */
async function scriptedRound(health: EventPublisher, media: EventPublisher, images: { router: EventPublisher; worker: EventPublisher }, round: number): Promise<number> {
  let inference = 0;
  const ok = async (status: Promise<number>): Promise<void> => { expect(await status).toBe(200); inference++; };
  await ok(chat(stack, 'fast'));
  await ok(chat(stack, 'vllm/Qwen/Qwen2.5-7B-Instruct', { stream: true }));
  await ok(chat(stack, 'smart', { stream: true }));
  await ok(chat(stack, 'claude-haiku-4-5', { stream: true }));
  await ok(embed(stack, 'text-embedding-3-small'));
  // A candidate skipped (local-only keeps the cloud out), a failure (unknown model), a retry and a fallback (vLLM failing).
  await ok(chat(stack, 'smart', { headers: { 'x-homelab-route': 'local-only' } }));
  expect(await chat(stack, 'no-such-model')).toBe(404);
  stack.sims.vllm.setFaults({ status: 503, failCount: 2 });
  await ok(chat(stack, 'smart', { stream: true }));
  stack.sims.vllm.setFaults({});

  // Health: ai-node/vllm goes down and comes back; the gateway's router stays up; media-node/sonarr is degraded.
  const t = Date.now();
  const iso = (ms: number): string => new Date(t + ms).toISOString();
  const vllm = { key: 'ai-node.vllm', node: 'ai-node', service: 'vllm', kind: 'vllm' };
  await publish(health, 'healthProbe', healthProbeEvent({ ...vllm, outcome: 'ok', state: 'up', latencyMs: 8, at: iso(0) }), healthProbeSubject('ai-node', 'vllm'));
  await publish(health, 'healthProbe', healthProbeEvent({ ...vllm, outcome: 'fail', state: 'down', latencyMs: null, error: 'connect ECONNREFUSED', at: iso(1) }), healthProbeSubject('ai-node', 'vllm'));
  await publish(health, 'healthChanged', healthChangedEvent({ ...vllm, state: 'down', previous: 'up', since: iso(1), previousSince: iso(-60_000) }), healthEventSubject('ai-node', 'vllm'));
  await publish(health, 'healthProbe', healthProbeEvent({ ...vllm, outcome: 'ok', state: 'up', latencyMs: 11, at: iso(2) }), healthProbeSubject('ai-node', 'vllm'));
  await publish(health, 'healthChanged', healthChangedEvent({ ...vllm, state: 'up', previous: 'down', since: iso(2), previousSince: iso(1), latencyMs: 11, error: null }), healthEventSubject('ai-node', 'vllm'));
  await publish(health, 'healthProbe', healthProbeEvent({ key: 'gateway.router', node: 'gateway', service: 'router', kind: 'nats-service', outcome: 'ok', state: 'up', latencyMs: 1.2, at: iso(3) }), healthProbeSubject('gateway', 'router'));
  await publish(health, 'healthProbe', healthProbeEvent({ key: 'media-node.sonarr', node: 'media-node', service: 'sonarr', kind: 'sonarr', outcome: 'degraded', state: 'degraded', latencyMs: 2400, at: iso(3) }), healthProbeSubject('media-node', 'sonarr'));

  // Media: snapshots of every kind, and transitions.
  await publish(media, 'mediaQueue', mediaQueueEvent([{ status: 'downloading', phase: 'downloading' }, { status: 'queued', phase: 'waiting' }, { status: 'completed', phase: 'completed' }]));
  await publish(media, 'mediaQueue', mediaQueueEvent([{ status: 'downloading', phase: 'downloading' }], { source: 'radarr', kind: 'radarr' }));
  await publish(media, 'mediaTransfer', mediaTransferEvent());
  await publish(media, 'mediaSessions', mediaSessionsEvent(['Transcode', 'DirectPlay']));
  for (const library of mediaLibraryEvents()) await publish(media, 'mediaLibrary', library);
  await publish(media, 'mediaStorage', mediaStorageEvent());
  await publish(media, 'mediaDownloadGrabbed', mediaDownloadEvent('grabbed'), 'media.download.grabbed');
  await publish(media, 'mediaDownloadImported', mediaDownloadEvent('imported'), 'media.download.imported');
  await publish(media, 'mediaStreamStarted', mediaStreamEvent());
  await publish(media, 'mediaStreamStopped', mediaStreamEvent({ stoppedAt: iso(0), durationMs: 2_700_000 }));
  await publish(media, 'mediaStorageLow', mediaStorageAlertEvent('low'));
  await publish(media, 'mediaServiceError', mediaServiceErrorEvent());
  await publish(media, 'mediaServiceRecovered', mediaServiceRecoveredEvent());
  await publish(media, 'mediaWebhook', mediaWebhookEvent(), mediaWebhookSubject('sonarr'));

  // Image jobs, as the router and the ComfyUI worker publish them: one completed (after a takeover), one failed.
  const at = iso(0);
  for (const [n, end] of [[1, 'completed'], [2, 'failed']] as const) {
    const jobId = `imgjob_dash${round}${n}xyz`;
    const base = { jobId, model: 'sdxl', backend: 'comfyui' as const, at };
    await publish(images.router, 'imageSubmitted', { ...base, requestedModel: 'image', kind: 'generate', n: 1, requestId: `req_${jobId}`, routeReason: 'alias:image > comfyui' }, imageEventSubject('submitted', jobId));
    await publish(images.worker, 'imageStarted', { ...base, attempt: 1, queueWaitMs: 1200 }, imageEventSubject('started', jobId));
    if (end === 'completed') {
      await publish(images.worker, 'imageStarted', { ...base, attempt: 2, queueWaitMs: 9000 }, imageEventSubject('started', jobId));
      await publish(images.worker, 'imageCompleted', {
        ...base, requestedModel: 'image', attempts: 2, queueWaitMs: 1200, durationMs: 6400, steps: 20, stepsPerSecond: 3.1,
        images: [{ id: `img_dash${round}abcdefghijklmnop`, contentType: 'image/png', bytes: 1000, width: 1024, height: 1024 }],
      }, imageEventSubject('completed', jobId));
    } else {
      await publish(images.worker, 'imageFailed', { ...base, attempts: 1, error: { code: 'backend_error', status: 507, message: 'ComfyUI ran out of GPU memory in KSampler (node 3)', reason: 'out_of_memory' } }, imageEventSubject('failed', jobId));
    }
  }
  return inference;
}

describe('Grafana dashboards against a real Prometheus', () => {
  it('every PromQL expression of every panel returns data after a scripted run', { timeout: 180_000 }, async () => {
    await using healthNc = await connectAs(stack.nats, 'health');
    await using mediaNc = await connectAs(stack.nats, 'media');
    const health = new EventPublisher(healthNc, new ReplyMux(healthNc, inboxPrefixOf(healthNc)));
    const media = new EventPublisher(mediaNc, new ReplyMux(mediaNc, inboxPrefixOf(mediaNc)));
    await using routerNc = await connectAs(stack.nats, 'router');
    await using workerNc = await connectAs(stack.nats, 'worker-comfyui');
    const images = { router: new EventPublisher(routerNc, new ReplyMux(routerNc, inboxPrefixOf(routerNc))), worker: new EventPublisher(workerNc, new ReplyMux(workerNc, inboxPrefixOf(workerNc))) };
    let inference = 0;
    // Two rounds with scrapes in between, so every counter and histogram moved within the rate windows.
    for (let round = 1; round <= 2; round++) {
      inference += await scriptedRound(health, media, images, round);
      let text = '';
      await waitFor(async () => {
        text = await telemetry.scrape();
        return sampleSum(text, 'homelab_telemetry_events_total', { event: 'inferenceCompleted', result: 'applied' }) >= inference
          && sampleSum(text, 'homelab_telemetry_events_total', { event: 'mediaWebhook', result: 'applied' }) >= round
          && sampleSum(text, 'homelab_telemetry_events_total', { event: 'healthProbe', result: 'applied' }) >= 5 * round
          && sampleSum(text, 'homelab_telemetry_events_total', { event: 'imageFailed', result: 'applied' }) >= round;
      }, 20_000, `round ${round} applied`).catch((err: Error) => {
        throw new Error(`${err.message}; ${inference} requests; telemetry counted:\n${text.split('\n').filter((l) => l.startsWith('homelab_telemetry_events_total')).join('\n')}`);
      });
      await prometheus.waitForScrape();
      await prometheus.waitForScrape();
    }

    const empty: string[] = [];
    for (const q of queries) {
      const expr = grafanaExpr(q.expr);
      const data = await prometheus.query(expr);
      const finite = data.result.filter((r) => Number.isFinite(Number(r.value[1])));
      if (finite.length === 0) empty.push(`${q.file} "${q.panel}": ${expr} → ${JSON.stringify(data.result)}`);
    }
    expect(empty, `panels without data:\n${empty.join('\n')}`).toEqual([]);
    expect(queries.length).toBeGreaterThan(60);

    // A few values a person reading the dashboards would check.
    const value = async (expr: string): Promise<number> => Number((await prometheus.query(expr)).result[0]?.value[1]);
    expect(await value('sum(homelab_health_state == bool 1)')).toBe(1); // sonarr degraded
    expect(await value('max(homelab_health_state{node="ai-node",service="vllm"})')).toBe(2);
    expect(await value('sum(homelab_health_state_changes_total{service="vllm"})')).toBe(4);
    expect(await value('sum(homelab_media_streams_active)')).toBe(2);
    expect(await value('sum(homelab_media_storage_low{path="/mnt/downloads"})')).toBe(1);
  });
});
