import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, type KeyRecord, type KeyRegistry } from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import { dialectOf, type Dialect, type DialectName } from '@homelab/dialects';
import { RateLimiter } from './rate-limit.ts';
import { isSignedImageFileUrl } from './images/index.ts';
import { sendError } from './relay.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The API dialect of the route: its errors leave in that dialect's shape. */
    dialect?: DialectName;
  }
  interface FastifyRequest {
    /** The API key the client presented and the edge accepted (keys on). */
    apiKey: KeyRecord | undefined;
    /** The key itself, as presented: the router verifies it again (a script on NATS presents its own). */
    presentedKey: string | undefined;
  }
}

export interface EdgeOptions {
  config: LabConfig;
  /** The accepted API keys; undefined when `auth.mode` is `none`. */
  keys?: KeyRegistry | undefined;
  /** How many ingress replicas run (a key's rate limit is split among them). */
  replicas: () => number;
}

/**
 * The dialect a request's errors are shaped in: its route's; for a route several APIs share (`GET
 * /v1/models`) or one that matched none, by the path and by `anthropic-version`, which Anthropic's
 * clients send with every request.
 */
export function dialectForRequest(request: FastifyRequest): Dialect {
  const name = request.routeOptions.config?.dialect ?? (request.url.startsWith('/api/') || request.url === '/' ? 'ollama.chat'
    : request.url.startsWith('/v1/messages') || isAnthropicClient(request) ? 'anthropic.messages' : 'openai.chat');
  return dialectOf(name);
}

/** A request from an Anthropic client (the SDK, Claude Code): it carries `anthropic-version`. */
export function isAnthropicClient(request: FastifyRequest): boolean {
  return request.headers['anthropic-version'] !== undefined;
}

function refuse(request: FastifyRequest, reply: FastifyReply, error: GatewayError): FastifyReply {
  sendError(reply, dialectForRequest(request), error, request.id);
  return reply;
}

/**
 * Who may use the API, checked in order before any route runs: browsers on other sites (refused
 * unless allowed by `auth.corsOrigins`), a rate limit per client address (so guessing keys is
 * slow), the API key (Bearer, or `x-api-key` as Anthropic's clients send it), the key's own rate limit.
 */
export const edge = fp<EdgeOptions>(async (app, { config, keys, replicas }) => {
  const limiter = new RateLimiter();
  const cors = new Set(config.auth.corsOrigins);
  app.decorateRequest('apiKey', undefined);
  app.decorateRequest('presentedKey', undefined);

  if (cors.size > 0) {
    app.addHook('onRequest', async (request, reply) => {
      const origin = request.headers.origin;
      if (!origin || !(cors.has('*') || cors.has(origin))) return;
      reply.header('access-control-allow-origin', cors.has('*') ? '*' : origin).header('vary', 'origin');
      reply.header('access-control-expose-headers', 'x-request-id, request-id, x-homelab-backend, x-homelab-model, x-homelab-attempts, x-homelab-route-reason, retry-after, retry-after-ms, x-should-retry');
    });
    app.options('/*', (_request, reply) => {
      reply.header('access-control-allow-methods', 'GET, POST, DELETE, OPTIONS')
        .header('access-control-allow-headers', 'authorization, content-type, x-api-key, anthropic-version, anthropic-beta, x-request-id, x-homelab-route, traceparent')
        .header('access-control-max-age', '600').code(204).send();
    });
  }

  app.addHook('onRequest', async (request, reply) => {
    if (!isApi(request.url) || request.method === 'OPTIONS') return;
    // Anthropic's answers carry `request-id` (its SDK shows it in errors and logs): on every answer, refusals included.
    if (dialectForRequest(request).name.startsWith('anthropic.')) reply.header('request-id', request.id);
    // A browser on another site sends its Origin: refuse unless configured, so no web page can make a
    // visitor's browser use the gateway (even where it could not read the answer).
    const origin = request.headers.origin;
    if (origin && !(cors.has('*') || cors.has(origin))) {
      return refuse(request, reply, new GatewayError('forbidden', `requests from the web origin ${origin.slice(0, 100)} are not allowed (auth.corsOrigins)`));
    }
    if (config.auth.ipRateLimitPerMinute > 0) {
      const byIp = limiter.take(`ip:${request.ip}`, config.auth.ipRateLimitPerMinute);
      if (!byIp.ok) return refuse(request, reply.header('retry-after', String(byIp.retryAfterS)), new GatewayError('rate_limited', `too many requests from ${request.ip}; retry in ${byIp.retryAfterS} s`));
    }
    // A signed image file URL needs no key (an `<img src>` cannot send one): its route checks the signature.
    if (!keys || isSignedImageFileUrl(request.url)) return;
    const presented = bearer(request.headers.authorization) ?? headerValue(request.headers['x-api-key']);
    const key = keys.authenticate(presented);
    if (!key) {
      return refuse(request, reply, new GatewayError('invalid_api_key', presented
        ? 'Incorrect API key provided (or it was revoked). Ask the lab\'s owner for a key (`homelab keys create NAME`).'
        : 'You didn\'t provide an API key. Send it as `Authorization: Bearer <key>` (or `x-api-key`).'));
    }
    if (key.rateLimitPerMinute) {
      const byKey = limiter.take(`key:${key.name}`, Math.max(1, key.rateLimitPerMinute / Math.max(1, replicas())));
      if (!byKey.ok) {
        return refuse(request, reply.header('retry-after', String(byKey.retryAfterS)), new GatewayError('rate_limited', `rate limit of key '${key.name}' (${key.rateLimitPerMinute} requests a minute) reached; retry in ${byKey.retryAfterS} s`));
      }
    }
    request.apiKey = key;
    request.presentedKey = presented;
  });
}, { name: 'homelab-edge' });

/** The paths of the APIs (OpenAI's and Anthropic's `/v1`, Ollama's `/api`): everything but the gateway's own status pages. */
function isApi(url: string): boolean {
  return url.startsWith('/v1/') || url.startsWith('/api/');
}

function bearer(value: string | undefined): string | undefined {
  return value?.startsWith('Bearer ') ? value.slice(7).trim() : undefined;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
