import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  MediaKinds, Subjects, listenOrExplain, mediaWebhookSubject, respondJson, type EventPublisher, type MediaKind, type MediaStorageSnapshot, type MicroService,
} from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import { MediaError, toMediaError } from './errors.ts';
import { Poller } from './poller.ts';
import { KvStateStore, type StateStore } from './state.ts';
import { StatusBoard, substance } from './status.ts';
import { defaultStatfs, measurePaths, type StatFs } from './storage.ts';
import { createTarget, nowIso, type PollResult, type SnapshotMessage, type TargetSpec } from './targets/index.ts';
import { ServiceAlerts, StorageAlerts } from './transitions/alerts.ts';
import { DownloadTracker } from './transitions/downloads.ts';
import type { EventSink, TargetRef } from './transitions/sink.ts';
import { StreamTracker } from './transitions/streams.ts';
import { WEBHOOK_KINDS, buildWebhookApp, eventTypeOf, scrubBody, webhookActions, type WebhookSource } from './webhooks.ts';

export const KV_BUCKET = 'media';

export interface MediaDeps {
  nc: NatsConnection;
  log: Logger;
  config: LabConfig;
  events: EventPublisher;
  /** Registers `media.status`; tests may leave it out. */
  service?: MicroService;
  statfs?: StatFs;
  /** For tests: a store instead of the KV bucket. */
  store?: StateStore;
}

export interface RunningMedia {
  readonly board: StatusBoard;
  /** The webhook receiver's port, when it runs. */
  readonly webhookPort: number | undefined;
  readonly targets: readonly TargetSpec[];
  stop(): Promise<void>;
}

/** The media services of the lab config that the media service polls, with their intervals and limits. */
export function mediaTargets(config: LabConfig, log?: Logger): TargetSpec[] {
  const m = config.media;
  const specs: TargetSpec[] = [];
  for (const svc of config.services) {
    if (!(MediaKinds as readonly string[]).includes(svc.kind) || svc.planned) continue;
    const kind = svc.kind as MediaKind;
    const override = m.targets[svc.name];
    if (override?.enabled === false) { log?.info({ target: svc.name }, 'not polled: disabled in media.targets'); continue; }
    if (!svc.url) { log?.info(`not configured: media ${svc.name}: no address (${kind.toUpperCase()}_URL)`); continue; }
    const name = specs.some((s) => s.name === svc.name) ? `${svc.node}-${svc.name}` : svc.name;
    specs.push({
      name, kind, url: svc.url,
      ...(svc.apiKey !== undefined && { apiKey: svc.apiKey }), ...(svc.username !== undefined && { username: svc.username }), ...(svc.password !== undefined && { password: svc.password }),
      intervalMs: override?.intervalMs ?? m.intervals[kind], timeoutMs: override?.timeoutMs ?? m.timeoutMs, maxResponseBytes: m.maxResponseBytes,
    });
  }
  return specs;
}

async function openBucket(nc: NatsConnection, config: LabConfig): Promise<KV> {
  const kvm = new Kvm(nc);
  const options = { replicas: config.nats.replicas, history: 1, ttl: config.media.stateTtlDays * 24 * 3600_000 };
  try {
    return await kvm.create(KV_BUCKET, options);
  } catch {
    // It exists with other settings (replicas or TTL changed): use it as it is.
    return await kvm.open(KV_BUCKET);
  }
}

/** Publishes a snapshot when its substance changed, and at least every `heartbeatMs`. */
class SnapshotPublisher {
  readonly #events: EventPublisher;
  readonly #heartbeatMs: number;
  readonly #last = new Map<string, { substance: string; at: number }>();

  constructor(events: EventPublisher, heartbeatMs: number) {
    this.#events = events;
    this.#heartbeatMs = heartbeatMs;
  }

  async publish(message: SnapshotMessage | { key: 'mediaStorage'; payload: MediaStorageSnapshot }): Promise<void> {
    const id = `${message.key}:${'source' in message.payload ? message.payload.source : ''}`;
    const now = Date.now();
    const s = substance(message);
    const last = this.#last.get(id);
    if (last && last.substance === s && now - last.at < this.#heartbeatMs) return;
    switch (message.key) {
      case 'mediaQueue': await this.#events.publish('mediaQueue', message.payload); break;
      case 'mediaTransfer': await this.#events.publish('mediaTransfer', message.payload); break;
      case 'mediaLibrary': await this.#events.publish('mediaLibrary', message.payload); break;
      case 'mediaSessions': await this.#events.publish('mediaSessions', message.payload); break;
      case 'mediaStorage': await this.#events.publish('mediaStorage', message.payload); break;
    }
    this.#last.set(id, { substance: s, at: now });
  }
}

/**
 * Starts everything the media service does: one poller per configured target, the storage check,
 * the webhook receiver and the `media.status` endpoint. The logic lives in the modules it wires.
 */
export async function startMedia(deps: MediaDeps): Promise<RunningMedia> {
  const { config, log, events } = deps;
  const m = config.media;
  const store = deps.store ?? new KvStateStore(await openBucket(deps.nc, config));
  const sink: EventSink = { publish: (key, payload, msgId) => events.publish(key, payload, { msgId }) };
  const trackerOptions = { store, sink, log };
  const downloads = new DownloadTracker(trackerOptions);
  const streams = new StreamTracker(trackerOptions);
  const storageAlerts = new StorageAlerts(trackerOptions);
  const serviceAlerts = new ServiceAlerts(trackerOptions);
  const board = new StatusBoard();
  const snapshots = new SnapshotPublisher(events, m.snapshotHeartbeatMs);
  const limits = { maxQueueRecords: m.maxQueueRecords, queuePageSize: m.queuePageSize, snapshotMaxItems: m.snapshotMaxItems };
  const specs = mediaTargets(config, log);
  const pollers: Poller[] = [];

  const applyResult = async (spec: TargetSpec, result: PollResult, signal: AbortSignal): Promise<void> => {
    const ref: TargetRef = { name: spec.name, kind: spec.kind };
    const problem = result.problems?.[0];
    board.polled(spec.name, nowIso(), problem);
    for (const snap of result.snapshots) board.snapshot(snap);
    if (problem) await serviceAlerts.error(ref, problem);
    else await serviceAlerts.ok(ref);
    for (const snap of result.snapshots) await snapshots.publish(snap);
    if (result.downloads) {
      await downloads.observe(ref, result.downloads.observations, { complete: result.downloads.complete, resolveGone: result.downloads.resolveGone, signal });
    }
    if (result.streams) await streams.observe(ref, result.streams, Math.max(30_000, 2 * spec.intervalMs));
  };

  for (const spec of specs) {
    board.addTarget(spec);
    const ref: TargetRef = { name: spec.name, kind: spec.kind };
    let target;
    try {
      target = createTarget(spec, limits, m.qbittorrent);
    } catch (err) {
      const error = toMediaError(err);
      log.warn({ target: spec.name, reason: error.reason }, `not polled: ${error.message}`);
      board.polled(spec.name, nowIso(), error);
      await serviceAlerts.error(ref, error).catch((e: unknown) => log.warn({ err: (e as Error).message }, 'could not publish a service error'));
      continue;
    }
    pollers.push(new Poller({
      target, log,
      onResult: (result, signal) => applyResult(spec, result, signal),
      onError: async (error: MediaError) => {
        board.polled(spec.name, nowIso(), error);
        log.debug({ target: spec.name, reason: error.reason, err: error.message }, 'poll failed');
        await serviceAlerts.error(ref, error);
      },
    }));
  }

  // The storage check: statfs on each path, the low-space alert, a missing path reported.
  const statfs = deps.statfs ?? defaultStatfs;
  const storageRef = { name: 'storage', kind: 'storage' as const };
  const thresholds = { freePercent: m.lowSpace.freePercent, freeBytes: m.lowSpace.freeBytes, hysteresisPercent: m.lowSpace.hysteresisPercent };
  const checkStorage = async (): Promise<void> => {
    const usages = await storageAlerts.observe(await measurePaths(m.paths, statfs), thresholds);
    const snapshot: MediaStorageSnapshot = {
      at: nowIso(), thresholds: { freePercent: thresholds.freePercent, ...(thresholds.freeBytes !== undefined && { freeBytes: thresholds.freeBytes }), hysteresisPercent: thresholds.hysteresisPercent },
      paths: usages,
    };
    board.storage(snapshot);
    const unreadable = usages.filter((u) => !u.ok);
    if (unreadable.length > 0) {
      await serviceAlerts.error(storageRef, new MediaError('missing_path', unreadable.map((u) => `${u.path}: ${u.error}`).join('; ')));
    } else await serviceAlerts.ok(storageRef);
    await snapshots.publish({ key: 'mediaStorage', payload: snapshot });
  };
  let storageTimer: NodeJS.Timeout | undefined;
  let storageRun: Promise<void> | undefined;
  let stopped = false;
  const storageLoop = (delay: number): void => {
    if (stopped || m.paths.length === 0) return;
    storageTimer = setTimeout(() => {
      storageRun = checkStorage()
        .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'storage check not applied (bus unavailable?)'))
        .finally(() => { storageRun = undefined; storageLoop(m.intervals.storage); });
    }, delay);
  };

  // Webhooks: a configured target name, or a kind (its first target, or the bare kind).
  const resolveSource = (name: string): WebhookSource | undefined => {
    const byName = specs.find((s) => s.name === name);
    if (byName) return (WEBHOOK_KINDS as readonly string[]).includes(byName.kind) ? { name: byName.name, kind: byName.kind as WebhookSource['kind'] } : undefined;
    if (!(WEBHOOK_KINDS as readonly string[]).includes(name)) return undefined;
    const kind = name as WebhookSource['kind'];
    return { name: specs.find((s) => s.kind === kind)?.name ?? kind, kind };
  };
  const onWebhook = async (source: WebhookSource, body: Record<string, unknown>): Promise<void> => {
    const eventType = eventTypeOf(source.kind, body);
    const instanceName = typeof body['instanceName'] === 'string' ? body['instanceName'] : typeof body['ServerName'] === 'string' ? body['ServerName'] : undefined;
    const digest = createHash('sha256').update(JSON.stringify(body)).digest('base64url');
    await events.publish('mediaWebhook', {
      source: source.name, kind: source.kind, eventType, at: nowIso(), ...(instanceName && { instanceName }), payload: scrubBody(body) as Record<string, unknown>,
    }, { subject: mediaWebhookSubject(source.kind), msgId: `webhook:${source.name}:${digest}` });
    const ref: TargetRef = { name: source.name, kind: source.kind };
    for (const action of webhookActions(source.kind, body)) {
      if (action.type === 'download') await downloads.webhook(ref, action.rawId, action.phase, action.info);
      else await streams.webhook(ref, action.what, action.stream);
    }
  };
  let webhookApp: ReturnType<typeof buildWebhookApp> | undefined;
  let webhookPort: number | undefined;
  if (m.webhooks.enabled && m.webhooks.secret) {
    webhookApp = buildWebhookApp({ secret: m.webhooks.secret, bodyLimitBytes: m.webhooks.bodyLimitBytes, log, resolveSource, onWebhook });
    await listenOrExplain(() => webhookApp!.listen({ host: m.webhooks.host, port: m.webhooks.port }), { what: 'the webhook receiver', host: m.webhooks.host, port: m.webhooks.port, variable: 'MEDIA_WEBHOOK_PORT' });
    webhookPort = (webhookApp.server.address() as AddressInfo).port;
    board.webhooks({ enabled: true, port: webhookPort });
    log.info({ host: m.webhooks.host, port: webhookPort }, 'webhook receiver listening');
  }

  deps.service?.addEndpoint('status', {
    subject: Subjects.mediaStatus.subject, queue: 'media', schema: Subjects.mediaStatus.schema,
    handler: ({ msg }) => respondJson(msg, board.status()),
  });

  for (const poller of pollers) poller.start();
  storageLoop(0);
  log.info({ targets: specs.map((s) => `${s.name}(${s.kind}) every ${s.intervalMs} ms`), paths: m.paths }, 'media service polling');

  return {
    board, webhookPort, targets: specs,
    async stop() {
      stopped = true;
      clearTimeout(storageTimer);
      await webhookApp?.close();
      await Promise.all(pollers.map((p) => p.stop()));
      await storageRun;
      await Promise.all([downloads.idle(), streams.idle()]);
    },
  };
}
