import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@homelab/logging';
import {
  arrApplicationUpdatePayload, arrDownloadPayload, arrGrabPayload, arrHealthPayload, arrManualInteractionPayload, arrRenamePayload, arrTestPayload,
  jellyfinAuthenticationFailurePayload, jellyfinItemAddedPayload, jellyfinPlaybackStartPayload, jellyfinPlaybackStopPayload, prowlarrGrabPayload,
} from '@homelab/simulators';
import { buildWebhookApp, eventTypeOf, resolveWebhookSource, scrubBody, secretMatches, webhookActions, webhookEvent, type WebhookSource } from './webhooks.ts';

// The receiver on a real listening port: auth before the body, JSON under any Content-Type,
// bad input answered 4xx with nothing published, and the senders' payloads mapped to actions.

const SECRET = 'webhook-secret-0123456789';
const log = createLogger({ service: 'test', level: 'silent' });
const HASH = 'ABCDEF0123456789ABCDEF0123456789ABCDEF01';

describe('webhook receiver', () => {
  const received: { source: WebhookSource; body: Record<string, unknown> }[] = [];
  let failPublish = false;
  const app = buildWebhookApp({
    secret: SECRET, bodyLimitBytes: 64 * 1024, log,
    resolveSource: (name) => (name === 'sonarr' || name === 'radarr' || name === 'prowlarr' || name === 'jellyfin' ? { name, kind: name } : name === 'sonarr-4k' ? { name, kind: 'sonarr' } : undefined),
    onWebhook: async (source, body) => {
      if (failPublish) throw new Error('bus down');
      received.push({ source, body });
    },
  });
  let base = '';
  beforeAll(async () => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  afterAll(() => app.close());
  beforeEach(() => { received.length = 0; failPublish = false; });

  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(base + path, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-homelab-secret': SECRET, ...headers } });

  it('accepts the secret as a header, as Basic auth password (any user) or as a Bearer token', async () => {
    const body = JSON.stringify(arrTestPayload('sonarr'));
    expect((await post('/webhooks/sonarr', body)).status).toBe(200);
    const basic = `Basic ${Buffer.from(`sonarr:${SECRET}`).toString('base64')}`;
    expect((await post('/webhooks/sonarr', body, { 'x-homelab-secret': '', authorization: basic })).status).toBe(401); // an empty header is a wrong secret
    const viaBasic = await fetch(`${base}/webhooks/sonarr`, { method: 'PUT', body, headers: { 'content-type': 'application/json', authorization: basic } });
    expect(viaBasic.status).toBe(200);
    const viaBearer = await fetch(`${base}/webhooks/sonarr`, { method: 'POST', body, headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET}` } });
    expect(viaBearer.status).toBe(200);
    expect(await viaBearer.json()).toEqual({ accepted: true, source: 'sonarr', eventType: 'Test' });
    expect(received).toHaveLength(3);
  });

  it('answers 401 to a wrong or missing secret, before reading the body, and publishes nothing', async () => {
    const wrong = await post('/webhooks/sonarr', JSON.stringify(arrGrabPayload('sonarr', { downloadId: HASH })), { 'x-homelab-secret': 'nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Basic/);
    expect(await wrong.json()).toEqual({ error: { message: 'wrong or missing webhook secret', code: 'unauthorized' } });
    const none = await fetch(`${base}/webhooks/sonarr`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(none.status).toBe(401);
    const badBasic = await fetch(`${base}/webhooks/sonarr`, { method: 'POST', body: '{}', headers: { authorization: `Basic ${Buffer.from('u:wrong').toString('base64')}` } });
    expect(badBasic.status).toBe(401);
    expect(received).toEqual([]);
  });

  it('answers 400 to malformed JSON, an empty body or a non-object, and keeps serving', async () => {
    for (const body of ['{"eventType":"Grab",', 'not json', '', '[1,2]', '"Grab"']) {
      const res = await post('/webhooks/radarr', body);
      expect(res.status, body).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_json');
    }
    expect(received).toEqual([]);
    expect((await post('/webhooks/radarr', JSON.stringify(arrHealthPayload('radarr')))).status).toBe(200);
  });

  it('takes JSON sent as text/plain (the Jellyfin plugin default) or with no content type', async () => {
    const start = JSON.stringify(jellyfinPlaybackStartPayload({ deviceId: 'tv', itemId: '0123456789abcdef0123456789abcdef' }));
    expect((await post('/webhooks/jellyfin', start, { 'content-type': 'text/plain; charset=utf-8' })).status).toBe(200);
    expect((await fetch(`${base}/webhooks/jellyfin`, { method: 'POST', body: new Blob([start]), headers: { 'x-homelab-secret': SECRET } })).status).toBe(200);
    expect(received.map((r) => r.body['NotificationType'])).toEqual(['PlaybackStart', 'PlaybackStart']);
  });

  it('keeps unknown event types, refuses unknown sources, limits the body, and says 503 when it cannot publish', async () => {
    expect((await post('/webhooks/sonarr-4k', JSON.stringify({ eventType: 'SomethingNew', instanceName: 'Sonarr 4K' }))).status).toBe(200);
    expect(received[0]).toEqual({ source: { name: 'sonarr-4k', kind: 'sonarr' }, body: { eventType: 'SomethingNew', instanceName: 'Sonarr 4K' } });
    expect((await post('/webhooks/plex', '{}')).status).toBe(404);
    const big = await post('/webhooks/sonarr', JSON.stringify({ eventType: 'Test', pad: 'x'.repeat(70 * 1024) }));
    expect(big.status).toBe(413);
    failPublish = true;
    expect((await post('/webhooks/sonarr', JSON.stringify(arrTestPayload('sonarr')))).status).toBe(503);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });
});

describe('webhookActions', () => {
  it('maps Grab and Download of Sonarr and Radarr to download phases', () => {
    expect(webhookActions('sonarr', arrGrabPayload('sonarr', { downloadId: HASH, title: 'The.Expanse.S01E01-GRP' }))).toEqual([{
      type: 'download', rawId: HASH, phase: 'grabbed',
      info: expect.objectContaining({ title: 'The.Expanse.S01E01-GRP', indexer: 'Nyaa.si (Prowlarr)', quality: 'Bluray-1080p', size: 1_500_000_000, downloadClient: 'qBittorrent', series: { id: 1, title: 'The Expanse' }, episodes: [{ seasonNumber: 1, episodeNumber: 1, title: 'Dulcinea' }] }),
    }]);
    expect(webhookActions('radarr', arrDownloadPayload('radarr', { downloadId: HASH, isUpgrade: true }))).toEqual([{
      type: 'download', rawId: HASH, phase: 'imported',
      info: expect.objectContaining({ movie: { id: 7, title: 'Blade Runner 2049', year: 2017 }, isUpgrade: true, path: expect.stringMatching(/^\/movies\/.+\.mkv$/), quality: 'Bluray-1080p' }),
    }]);
  });

  it('maps Jellyfin playback to streams with the poller\'s key spelling', () => {
    const [start] = webhookActions('jellyfin', jellyfinPlaybackStartPayload({ deviceId: 'tv', itemId: '0123456789ABCDEF0123456789ABCDEF', playMethod: 'Transcode' }));
    expect(start).toMatchObject({ type: 'stream', what: 'started', stream: { key: 'tv:0123456789abcdef0123456789abcdef', user: 'alice', playMethod: 'Transcode', item: { name: 'Blade Runner 2049', type: 'Movie' } } });
    expect(webhookActions('jellyfin', jellyfinPlaybackStopPayload({ deviceId: 'tv', itemId: 'ab' }))[0]).toMatchObject({ what: 'stopped' });
  });

  it('leaves every other event type to the generic webhook event', () => {
    for (const body of [arrTestPayload('sonarr'), arrHealthPayload('sonarr', true), arrRenamePayload(), arrApplicationUpdatePayload('radarr'), arrManualInteractionPayload('sonarr', { downloadId: HASH })]) {
      expect(webhookActions('sonarr', body)).toEqual([]);
    }
    expect(webhookActions('prowlarr', prowlarrGrabPayload())).toEqual([]);
    expect(webhookActions('jellyfin', jellyfinItemAddedPayload())).toEqual([]);
    expect(eventTypeOf('jellyfin', jellyfinAuthenticationFailurePayload())).toBe('AuthenticationFailure');
    expect(eventTypeOf('sonarr', {})).toBe('unknown');
  });

  it('scrubs anything that looks like a credential from a body', () => {
    expect(scrubBody({ a: 1, apiKey: 'k', nested: { Password: 'p', list: [{ token: 't', ok: 'yes' }] } })).toEqual({ a: 1, apiKey: '[redacted]', nested: { Password: '[redacted]', list: [{ token: '[redacted]', ok: 'yes' }] } });
    expect(secretMatches('abc', 'abc')).toBe(true);
    expect(secretMatches('abcd', 'abc')).toBe(false);
    expect(secretMatches(undefined, 'abc')).toBe(false);
  });
});

describe('a webhook\'s source and event', () => {
  const targets = [{ name: 'sonarr', kind: 'sonarr' }, { name: 'sonarr-4k', kind: 'sonarr' }, { name: 'jellyfin', kind: 'jellyfin' }, { name: 'qbittorrent', kind: 'qbittorrent' }];

  it('a target by its name; a kind means its first target, or the bare kind when none is configured', () => {
    expect(resolveWebhookSource(targets, 'sonarr-4k')).toEqual({ name: 'sonarr-4k', kind: 'sonarr' });
    expect(resolveWebhookSource(targets, 'jellyfin')).toEqual({ name: 'jellyfin', kind: 'jellyfin' });
    expect(resolveWebhookSource([{ name: 'sonarr-main', kind: 'sonarr' }], 'sonarr')).toEqual({ name: 'sonarr-main', kind: 'sonarr' });
    expect(resolveWebhookSource(targets, 'radarr')).toEqual({ name: 'radarr', kind: 'radarr' });
  });

  it('a target that sends no webhooks, and an unknown name, are no source', () => {
    expect(resolveWebhookSource(targets, 'qbittorrent')).toBeUndefined();
    expect(resolveWebhookSource(targets, 'immich')).toBeUndefined();
    expect(resolveWebhookSource(targets, 'nobody')).toBeUndefined();
  });

  it('the event names its source, type and instance, with the body scrubbed; the same body has the same message id', () => {
    const source: WebhookSource = { name: 'sonarr-4k', kind: 'sonarr' };
    const body = arrGrabPayload('sonarr', { downloadId: HASH });
    const { event, msgId } = webhookEvent(source, { ...body, apiKey: 'leaked' }, '2026-01-01T00:00:00.000Z');
    expect(event).toMatchObject({ source: 'sonarr-4k', kind: 'sonarr', eventType: 'Grab', at: '2026-01-01T00:00:00.000Z', instanceName: 'Sonarr' });
    expect(event.payload).toMatchObject({ apiKey: '[redacted]' });
    expect(webhookEvent(source, { ...body, apiKey: 'leaked' }, '2026-01-01T00:05:00.000Z').msgId).toBe(msgId);
    expect(webhookEvent(source, body, '2026-01-01T00:00:00.000Z').msgId).not.toBe(msgId);
    expect(msgId).toMatch(/^webhook:sonarr-4k:[\w-]{43}$/);
    expect(webhookEvent({ name: 'jellyfin', kind: 'jellyfin' }, { NotificationType: 'ItemAdded', ServerName: 'living-room' }, 'x').event.instanceName).toBe('living-room');
  });
});
