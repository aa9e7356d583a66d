import { KeyRegistry, exitOnStartFailure, listenOrExplain, openKeyBuckets, runService, type NatsConnection } from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import { buildApp, type IngressBus } from './app.ts';

const bus: IngressBus = { connected: false, draining: false };
let app: ReturnType<typeof buildApp> | undefined;
let keys: KeyRegistry | undefined;
let replicas = 1;

await runService({
  name: 'ingress',
  description: 'HTTP edge of the lab: the APIs the house\'s clients speak (OpenAI, Anthropic, Ollama), and /status',
  onConnectionChange: (connected) => { bus.connected = connected; },
  // HTTP first: /healthz answers and /readyz says "not ready" while NATS is still unreachable.
  async beforeConnect({ config, log, tracing }) {
    if (config.auth.mode === 'keys') {
      keys = new KeyRegistry(config.auth.keys.map((k) => ({ ...k, createdAt: 'config' })));
    } else {
      log.warn('auth is off (auth.mode: none / HOMELAB_AUTH=none): anyone who reaches this port can use every backend, cloud ones included');
    }
    app = buildApp({ config, log, bus, tracing, ...(keys && { keys }), replicas: () => replicas });
    await listenOrExplain(() => app!.listen({ port: config.gateway.port, host: config.gateway.host }), { what: 'the HTTP API', host: config.gateway.host, port: config.gateway.port, variable: 'PORT' });
    log.info({ port: config.gateway.port, host: config.gateway.host, auth: config.auth.mode }, 'listening');
  },
  async start({ nc, log, mux }) {
    bus.mux = mux;
    bus.nc = nc;
    bus.connected = !nc.isClosed();
    if (keys) void followKeys(nc, keys, log);
    const recount = (): void => void countReplicas(nc).then((n) => {
      if (n !== replicas) log.info({ replicas: n }, 'ingress replicas changed: per-key rate limits are split among them');
      replicas = n;
    }, () => { /* a failed round (NATS reconnecting) keeps the last count */ });
    const counting = setInterval(recount, 5000);
    counting.unref();
    recount();
    return async () => {
      clearInterval(counting);
      keys?.stop();
      // Unready first, so a load balancer stops sending; then the requests in flight finish.
      bus.draining = true;
      await new Promise((r) => setTimeout(r, Number(process.env['DRAIN_DELAY_MS'] ?? 0)));
      await app?.close();
    };
  },
}).catch(exitOnStartFailure('ingress'));

/** Keys made with `homelab keys` live in the `apikeys` bucket, which the router creates: wait for it, then follow it. */
async function followKeys(nc: NatsConnection, registry: KeyRegistry, log: Logger): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      const { keys: kv } = await openKeyBuckets(nc, 1, false);
      await registry.watch(kv, log);
      log.info('following API keys');
      return;
    } catch (err) {
      if (attempt === 0) log.info({ err: (err as Error).message }, 'API key bucket not there yet (the router makes it); only config keys until then');
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

/** Ingress replicas answering `$SRV.PING.ingress` now, this one included. */
async function countReplicas(nc: NatsConnection): Promise<number> {
  const ids = new Set<string>();
  for await (const m of await nc.requestMany('$SRV.PING.ingress', undefined, { strategy: 'timer', maxWait: 300 })) {
    if (m.data.length) ids.add(m.json<{ id: string }>().id);
  }
  return Math.max(1, ids.size);
}
