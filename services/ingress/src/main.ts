import { ReplyMux, busCredentialsFromEnv, exitOnStartFailure, inboxPrefixFor, runService } from '@homelab/bus';
import { buildApp, type IngressBus } from './app.ts';

const bus: IngressBus = { connected: false, draining: false };
let app: ReturnType<typeof buildApp> | undefined;

await runService({
  name: 'ingress',
  description: 'OpenAI-compatible HTTP edge of the lab: /v1/chat/completions, /v1/embeddings, /v1/models, /status',
  onConnectionChange: (connected) => { bus.connected = connected; },
  // HTTP first: /healthz answers and /readyz says "not ready" while NATS is still unreachable.
  async beforeConnect({ config, log }) {
    app = buildApp({ config, log, bus });
    await app.listen({ port: config.gateway.port, host: config.gateway.host });
    log.info({ port: config.gateway.port, host: config.gateway.host }, 'listening');
  },
  async start({ nc }) {
    bus.mux = new ReplyMux(nc, inboxPrefixFor(busCredentialsFromEnv().user));
    bus.nc = nc;
    bus.connected = !nc.isClosed();
    return async () => {
      bus.draining = true;
      await app?.close();
    };
  },
}).catch(exitOnStartFailure('ingress'));
