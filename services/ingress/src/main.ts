import { ReplyMux, busCredentialsFromEnv, exitOnStartFailure, inboxPrefixFor, runService } from '@homelab/bus';
import { buildApp, type IngressBus } from './app.ts';

const bus: IngressBus = { connected: false, draining: false };
let app: ReturnType<typeof buildApp> | undefined;

await runService({
  name: 'ingress',
  description: 'OpenAI-compatible HTTP edge of the lab: /v1/chat/completions, /v1/embeddings, /v1/models, /status',
  onConnectionChange: (connected) => { bus.connected = connected; },
  // HTTP first: /healthz answers and /readyz says "not ready" while NATS is still unreachable.
  async beforeConnect({ config, log, tracing }) {
    app = buildApp({ config, log, bus, tracing });
    await app.listen({ port: config.gateway.port, host: config.gateway.host });
    log.info({ port: config.gateway.port, host: config.gateway.host }, 'listening');
  },
  async start({ nc }) {
    bus.mux = new ReplyMux(nc, inboxPrefixFor(busCredentialsFromEnv().user));
    bus.nc = nc;
    bus.connected = !nc.isClosed();
    return async () => {
      // Unready first, so a load balancer stops sending; then the requests in flight finish.
      bus.draining = true;
      await new Promise((r) => setTimeout(r, Number(process.env['DRAIN_DELAY_MS'] ?? 0)));
      await app?.close();
    };
  },
}).catch(exitOnStartFailure('ingress'));
