import {
  GatewayError, H, KeyRegistry, Subjects, openKeyBuckets, exitOnStartFailure, respondJson, runService, waitUntilIdle, type SubjectSpec,
} from '@homelab/bus';
import { dialectOf, implementedDialects, type Dialect } from '@homelab/dialects';
import { ModelCatalog } from './catalog.ts';
import { Dispatcher } from './dispatch.ts';
import { HealthView } from './health-view.ts';
import { UsageBook, createKey, followLedger, listKeys, revokeKey, scriptsScopeOf } from './keys.ts';
import { serveStoredResponses } from './responses.ts';
import { SpendTracker, followSpend } from './spend.ts';
import { startImages } from './images/index.ts';

await runService({
  configArea: 'inference',
  name: 'router',
  streams: ['INFERENCE'],
  description: 'Decides which backend serves each inference request and hands it to that backend\'s workers',
  async start({ nc, log, config, service, mux, events, tracing }) {
    const catalog = new ModelCatalog(nc, config, log);
    catalog.start();
    // No endpoint takes a request, and $SRV does not announce this router (so /readyz is not 200),
    // before every backend was asked for its models: no model_not_found for a model that is there.
    await catalog.firstRound();
    const budget = config.routing.cloudDailyBudgetUsd;
    const spend = new SpendTracker(config.routing.prices);
    const spendFeed = budget !== undefined ? await followSpend(nc, spend, log) : undefined;
    const health = new HealthView(nc, config, log);
    health.start();
    // API keys: the router owns the `apikeys` and `usage` buckets, checks each key's scopes and
    // budgets, keeps the usage ledger, and answers `keys.*` (for the admin identity only).
    // With `auth: none` there are no keys: no buckets to follow and no ledger to keep (its consumer
    // would cost every request a delivery and an ack here).
    const buckets = await openKeyBuckets(nc, config.nats.replicas, true);
    const keys = new KeyRegistry(config.auth.keys.map((k) => ({ ...k, createdAt: 'config' })));
    const usage = new UsageBook();
    const keysOn = config.auth.mode === 'keys';
    if (keysOn) {
      await keys.watch(buckets.keys, log);
      await usage.watch(buckets.usage);
    }
    const ledger = keysOn ? await followLedger(nc, buckets.usage, log) : undefined;
    const dispatcher = new Dispatcher({
      nc, log, config, models: catalog, events, mux, tracing, isDown: health.isDown, ...(keysOn && { keys, usage }),
      ...(budget !== undefined && { cloudBudgetReached: () => spend.spentTodayUsd >= budget }),
      onCircuitTransition: (t) => {
        void events.publish('circuitChanged', { backend: t.backend as 'vllm', state: t.state, previous: t.previous, reason: t.reason, router: service.id, at: new Date().toISOString() })
          .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'could not store inference.circuit'));
      },
    });
    const cancels = nc.subscribe(Subjects.cancel.subject, {
      callback: (_err, msg) => {
        const id = msg.headers?.get(H.requestId);
        if (id && !msg.headers?.get(H.attempt)) dispatcher.cancel(id);
      },
    });
    // One endpoint per inference subject: the body is parsed and validated once, here, against its
    // dialect's schema; an invalid one is answered in that dialect's error shape.
    for (const { name, subject, dialect } of inferenceSubjects()) {
      service.addEndpoint(name, {
        subject, queue: 'router', schema: dialect.schema,
        handler: ({ msg, payload }) => dispatcher.place(msg, dialect, payload),
        onError: (msg, error) => dispatcher.rejected(msg, dialect, error),
        errorBody: (error) => dialect.error(error).body,
      });
    }
    // The Responses API's stored responses: read and deleted here, written by the workers.
    await serveStoredResponses({ nc, config, service, keys: keysOn ? keys : undefined, scriptsScope: scriptsScopeOf(config) });
    service.addEndpoint('keys-create', {
      subject: Subjects.keysCreate.subject, queue: 'router', schema: Subjects.keysCreate.schema,
      handler: async ({ msg, payload }) => respondJson(msg, await createKey(buckets.keys, keys, payload)),
    });
    service.addEndpoint('keys-list', {
      subject: Subjects.keysList.subject, queue: 'router', schema: null,
      handler: ({ msg }) => respondJson(msg, listKeys(keys, usage)),
    });
    service.addEndpoint('keys-revoke', {
      subject: Subjects.keysRevoke.subject, queue: 'router', schema: Subjects.keysRevoke.schema,
      handler: async ({ msg, payload }) => respondJson(msg, await revokeKey(buckets.keys, keys, payload.name)),
    });
    // Image generation (docs/images.md): its own endpoints, and its models in the list below.
    const images = await startImages({ nc, log, config, service, events, ...(keysOn && { keys, usage, usageKv: buckets.usage }) });
    service.addEndpoint('models', {
      subject: Subjects.models.subject, queue: 'router', schema: Subjects.models.schema,
      handler: ({ msg, payload }) => {
        const list = images.withModels(catalog.list());
        if (!payload?.id) return respondJson(msg, list);
        const model = list.data.find((m) => m.id === payload.id) ?? (payload.id.includes('/') ? list.data.find((m) => `${m.owned_by}/${m.id}` === payload.id) : undefined);
        if (!model) throw new GatewayError('model_not_found', `The model '${payload.id}' does not exist`, { param: 'model' });
        respondJson(msg, model);
      },
    });
    return async () => {
      // The endpoints no longer take requests; the ones being placed finish first.
      await waitUntilIdle(() => dispatcher.inFlight(), 25_000);
      await images.stop();
      catalog.stop(); dispatcher.stop(); await health.stop(); keys.stop(); usage.stop(); await ledger?.stop(); cancels.unsubscribe(); await spendFeed?.stop(); };
  },
}).catch(exitOnStartFailure('router'));

/** The public inference subjects with the dialect their bodies are in (the subject map's `dialect`). */
function inferenceSubjects(): { name: string; subject: string; dialect: Dialect }[] {
  const implemented = new Set<string>(implementedDialects());
  return Object.entries(Subjects as Record<string, SubjectSpec>)
    .filter(([, spec]) => spec.kind === 'request' && spec.dialect && implemented.has(spec.dialect))
    .map(([name, spec]) => ({ name, subject: spec.subject, dialect: dialectOf(spec.dialect) }));
}
