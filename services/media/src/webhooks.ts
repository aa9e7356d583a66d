import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { MediaStream, MediaWebhookEvent } from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import { normalizeJellyfinId, playMethodName, streamKey } from './targets/jellyfin.ts';
import type { DownloadInfo } from './targets/types.ts';

/*
 * The webhook receiver: Sonarr and Radarr (Settings > Connect > Webhook), Prowlarr, and Jellyfin's
 * webhook plugin POST (or PUT) to `/webhooks/<source>`, where <source> is a service name from the
 * lab config (`sonarr`, `radarr-4k`) or a kind. Authenticated by one shared secret, sent as
 * `X-Homelab-Secret: <secret>`, `Authorization: Bearer <secret>`, or as the password of Basic auth
 * (the *arr webhook form has username/password fields); compared in constant time, before the body
 * is read. Bodies are JSON whatever the Content-Type says (the Jellyfin plugin sends `text/plain`).
 */

export type WebhookKind = 'sonarr' | 'radarr' | 'prowlarr' | 'jellyfin';
export const WEBHOOK_KINDS: readonly WebhookKind[] = ['sonarr', 'radarr', 'prowlarr', 'jellyfin'];

export interface WebhookSource {
  name: string;
  kind: WebhookKind;
}

export interface WebhookDeps {
  secret: string;
  bodyLimitBytes: number;
  log: Logger;
  /** `sonarr` → the Sonarr target (or a bare kind when none is configured); undefined → 404. */
  resolveSource(name: string): WebhookSource | undefined;
  /** Publishes what the webhook says; a throw answers 503 so the sender may retry. */
  onWebhook(source: WebhookSource, body: Record<string, unknown>): Promise<void>;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Constant-time comparison (of digests, so the lengths never differ). */
export function secretMatches(candidate: string | undefined, secret: string): boolean {
  if (candidate === undefined) return false;
  return timingSafeEqual(digest(candidate), digest(secret));
}

function presentedSecret(req: FastifyRequest): string | undefined {
  const header = req.headers['x-homelab-secret'];
  if (typeof header === 'string') return header;
  const auth = req.headers.authorization;
  if (!auth) return undefined;
  const bearer = /^Bearer\s+(.+)$/i.exec(auth);
  if (bearer) return bearer[1];
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(auth);
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 ? decoded.slice(colon + 1) : undefined;
}

function fail(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).type('application/json').send({ error: { message, code } });
}

export function buildWebhookApp(deps: WebhookDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: deps.bodyLimitBytes, return503OnClosing: true });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/webhooks/')) return;
    if (!secretMatches(presentedSecret(req), deps.secret)) {
      deps.log.warn({ path: req.url.split('?')[0], remote: req.ip }, 'webhook refused: wrong or missing secret');
      reply.header('www-authenticate', 'Basic realm="homelab-media"');
      return fail(reply, 401, 'unauthorized', 'wrong or missing webhook secret');
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    const status = err.statusCode ?? 500;
    if (status === 413) return fail(reply, 413, 'body_too_large', `body larger than media.webhooks.bodyLimitBytes (${deps.bodyLimitBytes})`);
    if (status >= 400 && status < 500) return fail(reply, status, 'invalid_request', err.message);
    deps.log.error({ err: err.message }, 'webhook receiver error');
    return fail(reply, 500, 'internal_error', 'internal error');
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.route<{ Params: { source: string }; Body: string | undefined }>({
    method: ['POST', 'PUT'],
    url: '/webhooks/:source',
    handler: async (req, reply) => {
      const source = deps.resolveSource(req.params.source);
      if (!source) return fail(reply, 404, 'not_found', `no webhook source '${req.params.source}' (a media service name or one of ${WEBHOOK_KINDS.join(', ')})`);
      const text = typeof req.body === 'string' ? req.body : '';
      if (text.trim() === '') return fail(reply, 400, 'invalid_json', 'empty body; expected a JSON object');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return fail(reply, 400, 'invalid_json', 'body is not valid JSON');
      }
      if (!body || typeof body !== 'object' || Array.isArray(body)) return fail(reply, 400, 'invalid_json', 'body must be a JSON object');
      const eventType = eventTypeOf(source.kind, body as Record<string, unknown>);
      try {
        await deps.onWebhook(source, body as Record<string, unknown>);
      } catch (err) {
        deps.log.error({ source: source.name, eventType, err: (err as Error).message }, 'webhook not published');
        return fail(reply, 503, 'unavailable', 'the event could not be published; try again');
      }
      deps.log.info({ source: source.name, eventType }, 'webhook received');
      return reply.code(200).send({ accepted: true, source: source.name, eventType });
    },
  });
  return app;
}

/**
 * The source a webhook path names: a configured target, or a kind (its first target, or the bare
 * kind when none is configured, so a sender set up before its target still gets through).
 */
export function resolveWebhookSource(targets: readonly { name: string; kind: string }[], name: string): WebhookSource | undefined {
  const byName = targets.find((t) => t.name === name);
  if (byName) return isWebhookKind(byName.kind) ? { name: byName.name, kind: byName.kind } : undefined;
  if (!isWebhookKind(name)) return undefined;
  return { name: targets.find((t) => t.kind === name)?.name ?? name, kind: name };
}

function isWebhookKind(kind: string): kind is WebhookKind {
  return (WEBHOOK_KINDS as readonly string[]).includes(kind);
}

/**
 * The `media.webhook.<kind>` event of a webhook, and its message id: the body's digest, so a sender
 * that retries (it got no answer in time) is stored once.
 */
export function webhookEvent(source: WebhookSource, body: Record<string, unknown>, at: string): { event: MediaWebhookEvent; msgId: string } {
  const instanceName = typeof body['instanceName'] === 'string' ? body['instanceName'] : typeof body['ServerName'] === 'string' ? body['ServerName'] : undefined;
  const digest = createHash('sha256').update(JSON.stringify(body)).digest('base64url');
  return {
    event: { source: source.name, kind: source.kind, eventType: eventTypeOf(source.kind, body), at, ...(instanceName && { instanceName }), payload: scrubBody(body) as Record<string, unknown> },
    msgId: `webhook:${source.name}:${digest}`,
  };
}

/** `eventType` (Sonarr, Radarr, Prowlarr) or `NotificationType` (Jellyfin); `unknown` when absent. */
export function eventTypeOf(kind: WebhookKind, body: Record<string, unknown>): string {
  const value = kind === 'jellyfin' ? body['NotificationType'] ?? body['notificationType'] : body['eventType'];
  return typeof value === 'string' && value.trim() !== '' ? value.trim().slice(0, 64) : 'unknown';
}

/** A webhook body without anything that looks like a credential (should a template include one). */
export function scrubBody(value: unknown, depth = 0): unknown {
  if (depth > 8) return null;
  if (Array.isArray(value)) return value.map((v) => scrubBody(v, depth + 1));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, /api[-_]?key|password|passwd|secret|token|authorization|cookie/i.test(k) ? '[redacted]' : scrubBody(v, depth + 1)]));
  }
  return value;
}

export type WebhookAction =
  | { type: 'download'; rawId: string; phase: 'grabbed' | 'imported'; info: DownloadInfo }
  | { type: 'stream'; what: 'started' | 'stopped'; stream: MediaStream };

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined);
const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const integer = (v: unknown): number | undefined => (Number.isInteger(v) ? (v as number) : undefined);

function arrContext(kind: 'sonarr' | 'radarr', body: Obj): Pick<DownloadInfo, 'series' | 'movie' | 'episodes'> {
  const series = obj(body['series']);
  const movie = obj(body['movie']);
  const episodes = Array.isArray(body['episodes']) ? (body['episodes'] as unknown[]).map(obj).filter((e): e is Obj => e !== undefined) : [];
  return {
    ...(kind === 'sonarr' && series && text(series['title']) && { series: { ...(integer(series['id']) !== undefined && { id: series['id'] as number }), title: series['title'] as string } }),
    ...(kind === 'radarr' && movie && text(movie['title']) && {
      movie: { ...(integer(movie['id']) !== undefined && { id: movie['id'] as number }), title: movie['title'] as string, ...(integer(movie['year']) !== undefined && { year: movie['year'] as number }) },
    }),
    ...(episodes.length > 0 && {
      episodes: episodes.slice(0, 50).map((e) => ({
        ...(integer(e['seasonNumber']) !== undefined && { seasonNumber: e['seasonNumber'] as number }),
        ...(integer(e['episodeNumber']) !== undefined && { episodeNumber: e['episodeNumber'] as number }),
        ...(text(e['title']) && { title: e['title'] as string }),
      })),
    }),
  };
}

/** What a webhook means for the trackers, besides its own `media.webhook.<kind>` event. */
export function webhookActions(kind: WebhookKind, body: Obj): WebhookAction[] {
  const eventType = eventTypeOf(kind, body);
  if (kind === 'sonarr' || kind === 'radarr') {
    const rawId = text(body['downloadId']);
    if (!rawId) return [];
    const release = obj(body['release']);
    const context = arrContext(kind, body);
    const client = text(body['downloadClient']);
    if (eventType === 'Grab') {
      return [{
        type: 'download', rawId, phase: 'grabbed',
        info: {
          title: text(release?.['releaseTitle']) ?? '(untitled)', ...context, ...(client && { downloadClient: client }),
          ...(num(release?.['size']) !== undefined && { size: release!['size'] as number }), ...(text(release?.['indexer']) && { indexer: release!['indexer'] as string }),
          ...(text(release?.['quality']) && { quality: release!['quality'] as string }),
        },
      }];
    }
    if (eventType === 'Download') {
      const file = obj(body[kind === 'sonarr' ? 'episodeFile' : 'movieFile']);
      return [{
        type: 'download', rawId, phase: 'imported',
        info: {
          title: text(release?.['releaseTitle']) ?? text(file?.['sceneName']) ?? text(file?.['relativePath']) ?? '(untitled)', ...context, ...(client && { downloadClient: client }),
          ...(num(file?.['size']) !== undefined && { size: file!['size'] as number }), ...(text(file?.['quality']) && { quality: file!['quality'] as string }),
          ...(text(file?.['path']) && { path: file!['path'] as string }), ...(typeof body['isUpgrade'] === 'boolean' && { isUpgrade: body['isUpgrade'] }),
        },
      }];
    }
    return [];
  }
  if (kind === 'jellyfin' && (eventType === 'PlaybackStart' || eventType === 'PlaybackStop')) {
    const deviceId = text(body['DeviceId']);
    const itemId = text(body['ItemId']);
    if (!deviceId || !itemId) return [];
    const playMethod = playMethodName(body['PlayMethod']);
    const stream: MediaStream = {
      key: streamKey(deviceId, itemId), deviceId,
      ...(text(body['DeviceName']) && { deviceName: body['DeviceName'] as string }), ...(text(body['ClientName']) && { client: body['ClientName'] as string }),
      ...(text(body['NotificationUsername']) && { user: body['NotificationUsername'] as string }),
      item: {
        id: normalizeJellyfinId(itemId), name: text(body['Name']) ?? '(unnamed)', type: text(body['ItemType']) ?? 'Unknown',
        ...(text(body['SeriesName']) && { seriesName: body['SeriesName'] as string }), ...(integer(body['SeasonNumber']) !== undefined && { seasonNumber: body['SeasonNumber'] as number }),
        ...(integer(body['EpisodeNumber']) !== undefined && { episodeNumber: body['EpisodeNumber'] as number }), ...(num(body['RunTimeTicks']) !== undefined && { runTimeTicks: body['RunTimeTicks'] as number }),
      },
      ...(playMethod && { playMethod }), ...(typeof body['IsPaused'] === 'boolean' && { isPaused: body['IsPaused'] }),
      ...(num(body['PlaybackPositionTicks']) !== undefined && { positionTicks: body['PlaybackPositionTicks'] as number }),
    };
    return [{ type: 'stream', what: eventType === 'PlaybackStart' ? 'started' : 'stopped', stream }];
  }
  return [];
}
