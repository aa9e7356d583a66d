import type { FastifyPluginAsync } from 'fastify';
import { Subjects } from '@homelab/bus';
import { openAIChat } from '@homelab/dialects';
import { forwardTo, type RouteDeps } from './forward.ts';

export interface StatusDeps extends RouteDeps {
  /** Set when shutting down: /readyz answers 503 first, so load balancers stop sending. */
  draining: () => boolean;
}

/**
 * The gateway's own pages: `/healthz` (the process answers), `/readyz` (it can serve: connected,
 * a router answering), `/status` (the lab's health snapshot).
 */
export const statusRoutes: FastifyPluginAsync<StatusDeps> = async (app, deps) => {
  const bus = deps.relay.bus;
  app.get('/healthz', async (request, reply) => {
    reply.header('x-request-id', request.id).send({ status: 'ok' });
  });

  let routerSeenAt = 0;
  app.get('/readyz', async (request, reply) => {
    const checks = { nats: bus.connected, router: false, draining: deps.draining() };
    if (bus.nc && bus.connected) {
      if (Date.now() - routerSeenAt < 2000) checks.router = true;
      else {
        try {
          // A router answers PING only once it serves (its first model discovery round done).
          await bus.nc.request('$SRV.PING.router', undefined, { timeout: 1000 });
          routerSeenAt = Date.now();
          checks.router = true;
        } catch { /* not ready */ }
      }
    }
    const ready = checks.nats && checks.router && !checks.draining;
    reply.code(ready ? 200 : 503).header('x-request-id', request.id).send({ status: ready ? 'ready' : 'not ready', ...checks });
  });

  app.get('/status', forwardTo(Subjects.healthStatus.subject, openAIChat, deps));
};
