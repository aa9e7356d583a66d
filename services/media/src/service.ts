import type { AddressInfo } from 'node:net';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  MediaKinds, Subjects, listenOrExplain, mediaWebhookSubject, respondJson, createKvBucket, retryJetStreamApi, type EventPublisher, type MediaKind, type MediaStorageSnapshot, type MicroService,
} from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import { toMediaError, type MediaError } from './errors.ts';
import { Poller } from './poller.ts';
import { KvStateStore, type StateStore } from './state.ts';
import { StatusBoard, substance } from './status.ts';
import { StorageCheck } from './storage-check.ts';
import { defaultStatfs, type StatFs } from './storage.ts';
import { createTarget, nowIso, type PollResult, type SnapshotMessage, type TargetSpec } from './targets/index.ts';
import { ServiceAlerts, StorageAlerts } from './transitions/alerts.ts';
import { DownloadTracker } from './transitions/downloads.ts';
import type { EventSink, TargetRef } from './transitions/sink.ts';
import { StreamTracker } from './transitions/streams.ts';
import { buildWebhookApp, resolveWebhookSource, webhookActions, webhookEvent, type WebhookSource } from './webhooks.ts';

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
  const options = { replicas: config.nats.replicas, history: 1, ttl: config.media.stateTtlDays * 24 * 3600_000 };
  try {
    return await createKvBucket(nc, KV_BUCKET, options);
  } catch {
    // It exists with other settings (replicas or TTL changed): use it as it is.
    return await retryJetStreamApi(() => new Kvm(nc).open(KV_BUCKET));
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
  const store = deps.store ?? new KvStateStore(await openBucket(deps.nc, deps.config));
  const media = new MediaService(deps, store);
  await media.start();
  return media;
}

class MediaService implements RunningMedia {
  readonly board = new StatusBoard();
  readonly targets: TargetSpec[];
  #webhookPort: number | undefined;
  readonly #deps: MediaDeps;
  readonly #media: LabConfig['media'];
  readonly #downloads: DownloadTracker;
  readonly #streams: StreamTracker;
  readonly #serviceAlerts: ServiceAlerts;
  readonly #snapshots: SnapshotPublisher;
  readonly #storage: StorageCheck;
  readonly #pollers: Poller[] = [];
  #webhookApp: ReturnType<typeof buildWebhookApp> | undefined;

  constructor(deps: MediaDeps, store: StateStore) {
    const { config, log, events } = deps;
    this.#deps = deps;
    this.#media = config.media;
    const sink: EventSink = { publish: (key, payload, msgId) => events.publish(key, payload, { msgId }) };
    const trackerOptions = { store, sink, log };
    this.#downloads = new DownloadTracker(trackerOptions);
    this.#streams = new StreamTracker(trackerOptions);
    this.#serviceAlerts = new ServiceAlerts(trackerOptions);
    this.#snapshots = new SnapshotPublisher(events, this.#media.snapshotHeartbeatMs);
    this.#storage = new StorageCheck({
      media: this.#media, statfs: deps.statfs ?? defaultStatfs, board: this.board, log,
      storageAlerts: new StorageAlerts(trackerOptions), serviceAlerts: this.#serviceAlerts,
      publishSnapshot: (payload) => this.#snapshots.publish({ key: 'mediaStorage', payload }),
    });
    this.targets = mediaTargets(config, log);
  }

  get webhookPort(): number | undefined {
    return this.#webhookPort;
  }

  async start(): Promise<void> {
    for (const spec of this.targets) {
      this.board.addTarget(spec);
      const poller = await this.#pollerFor(spec);
      if (poller) this.#pollers.push(poller);
    }
    await this.#listenForWebhooks();
    this.#deps.service?.addEndpoint('status', {
      subject: Subjects.mediaStatus.subject, queue: 'media', schema: Subjects.mediaStatus.schema,
      handler: ({ msg }) => respondJson(msg, this.board.status()),
    });
    for (const poller of this.#pollers) poller.start();
    this.#storage.start();
    const targets = this.targets.map((s) => `${s.name}(${s.kind}) every ${s.intervalMs} ms`);
    this.#deps.log.info({ targets, paths: this.#media.paths }, 'media service polling');
  }

  async stop(): Promise<void> {
    // No storage check starts from now on; the one under way, if any, is awaited with the rest.
    const storageStopped = this.#storage.stop();
    await this.#webhookApp?.close();
    await Promise.all(this.#pollers.map((p) => p.stop()));
    await storageStopped;
    await Promise.all([this.#downloads.idle(), this.#streams.idle()]);
  }

  /** A target that cannot be polled (its config is wrong) is reported as failing, and the others go on. */
  async #pollerFor(spec: TargetSpec): Promise<Poller | undefined> {
    const { log } = this.#deps;
    const ref: TargetRef = { name: spec.name, kind: spec.kind };
    const m = this.#media;
    let target;
    try {
      target = createTarget(spec, { maxQueueRecords: m.maxQueueRecords, queuePageSize: m.queuePageSize, snapshotMaxItems: m.snapshotMaxItems }, m.qbittorrent);
    } catch (err) {
      const error = toMediaError(err);
      log.warn({ target: spec.name, reason: error.reason }, `not polled: ${error.message}`);
      this.board.polled(spec.name, nowIso(), error);
      await this.#serviceAlerts.error(ref, error).catch((e: unknown) => log.warn({ err: (e as Error).message }, 'could not publish a service error'));
      return undefined;
    }
    return new Poller({
      target, log,
      onResult: (result, signal) => this.#applyResult(spec, result, signal),
      onError: async (error: MediaError) => {
        this.board.polled(spec.name, nowIso(), error);
        log.debug({ target: spec.name, reason: error.reason, err: error.message }, 'poll failed');
        await this.#serviceAlerts.error(ref, error);
      },
    });
  }

  /** A poll's outcome: the board first (`media.status` is right even when the bus is not), then the events. */
  async #applyResult(spec: TargetSpec, result: PollResult, signal: AbortSignal): Promise<void> {
    const ref: TargetRef = { name: spec.name, kind: spec.kind };
    const problem = result.problems?.[0];
    this.board.polled(spec.name, nowIso(), problem);
    for (const snap of result.snapshots) this.board.snapshot(snap);
    if (problem) await this.#serviceAlerts.error(ref, problem);
    else await this.#serviceAlerts.ok(ref);
    for (const snap of result.snapshots) await this.#snapshots.publish(snap);
    if (result.downloads) {
      const { observations, complete, resolveGone } = result.downloads;
      await this.#downloads.observe(ref, observations, { complete, resolveGone, signal });
    }
    if (result.streams) await this.#streams.observe(ref, result.streams, Math.max(30_000, 2 * spec.intervalMs));
  }

  async #listenForWebhooks(): Promise<void> {
    const { webhooks } = this.#media;
    if (!webhooks.enabled || !webhooks.secret) return;
    const { log } = this.#deps;
    const app = buildWebhookApp({
      secret: webhooks.secret, bodyLimitBytes: webhooks.bodyLimitBytes, log,
      resolveSource: (name) => resolveWebhookSource(this.targets, name),
      onWebhook: (source, body) => this.#onWebhook(source, body),
    });
    this.#webhookApp = app;
    await listenOrExplain(() => app.listen({ host: webhooks.host, port: webhooks.port }), {
      what: 'the webhook receiver', host: webhooks.host, port: webhooks.port, variable: 'MEDIA_WEBHOOK_PORT',
    });
    this.#webhookPort = (app.server.address() as AddressInfo).port;
    this.board.webhooks({ enabled: true, port: this.#webhookPort });
    log.info({ host: webhooks.host, port: this.#webhookPort }, 'webhook receiver listening');
  }

  /** Every webhook is an event of its own; the ones about a download or a stream move their trackers too. */
  async #onWebhook(source: WebhookSource, body: Record<string, unknown>): Promise<void> {
    const { event, msgId } = webhookEvent(source, body, nowIso());
    await this.#deps.events.publish('mediaWebhook', event, { subject: mediaWebhookSubject(source.kind), msgId });
    const ref: TargetRef = { name: source.name, kind: source.kind };
    for (const action of webhookActions(source.kind, body)) {
      if (action.type === 'download') await this.#downloads.webhook(ref, action.rawId, action.phase, action.info);
      else await this.#streams.webhook(ref, action.what, action.stream);
    }
  }
}
