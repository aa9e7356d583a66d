import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Dialect } from '@homelab/dialects';
import { HomelabSpanAttr, type Tracing } from '@homelab/tracing';
import { relay, wantsLocalOnly, type RelayDeps, type RelayRequest } from '../relay.ts';

export interface RouteDeps {
  relay: RelayDeps;
  /** A span per HTTP request when tracing is on. */
  tracing?: Tracing | undefined;
}

export interface ForwardOptions {
  /** The request's bytes on the bus (default: the HTTP body, unparsed). */
  body?: (request: FastifyRequest) => Uint8Array;
  rewrite?: (request: FastifyRequest) => RelayRequest['rewrite'];
  /** The subject answers errors in OpenAI's shape: the relay shapes them in the request's dialect. */
  reshapeErrors?: boolean;
}

const EMPTY = new Uint8Array(0);

/**
 * A route handler that relays the request to a subject and the answer back, in the route's dialect
 * (or the request's, for a route that several APIs share).
 */
export function forwardTo(subject: string, dialect: Dialect | ((request: FastifyRequest) => Dialect), deps: RouteDeps, options: ForwardOptions = {}) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const what: RelayRequest = {
      subject, dialect: typeof dialect === 'function' ? dialect(request) : dialect,
      body: options.body ? options.body(request) : request.body instanceof Buffer ? request.body : EMPTY,
      apiKey: request.presentedKey,
      localOnly: wantsLocalOnly(request.headers['x-homelab-route']),
      ...(options.rewrite && { rewrite: options.rewrite(request) }),
      ...(options.reshapeErrors && { reshapeErrors: true }),
    };
    const tracing = deps.tracing;
    if (!tracing?.enabled) return relay(request, reply, what, deps.relay);
    const route = request.routeOptions.url ?? '';
    const hop = tracing.startHop(`${request.method} ${route}`, {
      traceparent: request.headers['traceparent'] as string | undefined, kind: 'server',
      attributes: { 'http.request.method': request.method, 'http.route': route, [HomelabSpanAttr.requestId]: request.id },
    });
    try {
      await relay(request, reply, { ...what, traceparent: hop.traceparent }, deps.relay);
    } finally {
      hop.setAttributes({ 'http.response.status_code': reply.statusCode });
      if (reply.statusCode >= 500) hop.fail(new Error(`HTTP ${reply.statusCode}`), String(reply.statusCode));
      hop.end();
    }
  };
}
