import {
  GatewayError, H, KeyRegistry, ReplyMux, Subjects, openKeyBuckets, busCredentialsFromEnv, exitOnStartFailure, inboxPrefixFor, respondJson, runService, waitUntilIdle,
} from '@homelab/bus';
import { ModelCatalog } from './catalog.ts';
import { Dispatcher } from './dispatch.ts';
import { HealthView } from './health-view.ts';
import { UsageBook, createKey, followLedger, listKeys, revokeKey } from './keys.ts';
import { SpendTracker, followSpend } from './spend.ts';

await runService({
  configArea: 'inference',
  name: 'router',
  streams: ['INFERENCE'],
  description: 'Decides which backend serves each inference request and hands it to that backend\'s workers',
  async start({ nc, log, config, service, events, tracing }) {
    const catalog = new ModelCatalog(nc, config, log);
    catalog.start();
    // No endpoint takes a request, and $SRV does not announce this router (so /readyz is not 200),
    // before every backend was asked for its models: no model_not_found for a model that is there.
    await catalog.firstRound();
    const mux = new ReplyMux(nc, inboxPrefixFor(busCredentialsFromEnv().user));
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
    service.addEndpoint('chat', {
      subject: Subjects.chatCompletions.subject, queue: 'router', schema: Subjects.chatCompletions.schema,
      handler: ({ msg, payload }) => dispatcher.chat(msg, payload),
      onError: (msg, error) => dispatcher.recordRejected(msg, 'chat', error),
    });
    service.addEndpoint('embeddings', {
      subject: Subjects.embeddings.subject, queue: 'router', schema: Subjects.embeddings.schema,
      handler: ({ msg, payload }) => dispatcher.embeddings(msg, payload),
      onError: (msg, error) => dispatcher.recordRejected(msg, 'embeddings', error),
    });
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
    service.addEndpoint('models', {
      subject: Subjects.models.subject, queue: 'router', schema: Subjects.models.schema,
      handler: ({ msg, payload }) => {
        const list = catalog.list();
        if (!payload?.id) return respondJson(msg, list);
        const model = list.data.find((m) => m.id === payload.id) ?? (payload.id.includes('/') ? list.data.find((m) => `${m.owned_by}/${m.id}` === payload.id) : undefined);
        if (!model) throw new GatewayError('model_not_found', `The model '${payload.id}' does not exist`, { param: 'model' });
        respondJson(msg, model);
      },
    });
    return async () => {
      // The endpoints no longer take requests; the ones being placed finish first.
      await waitUntilIdle(() => dispatcher.inFlight(), 25_000);
      catalog.stop(); dispatcher.stop(); await health.stop(); keys.stop(); usage.stop(); await ledger?.stop(); cancels.unsubscribe(); await spendFeed?.stop(); mux.close(); };
  },
}).catch(exitOnStartFailure('router'));
