import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Streams, ensureStreams, eventValidator, type MediaTransferSnapshot } from '@homelab/bus';
import { connectAs, startNatsServer, startServiceProcess, type TestNatsServer } from '@homelab/testing';
import { MediaError } from './errors.ts';
import { createQbittorrentTarget } from './targets/qbittorrent.ts';
import type { TargetSpec } from './targets/types.ts';
import { MediaEvents, makeTorrent, sleep, startQbittorrent, writeMediaConfig, type Qbittorrent } from './testkit.ts';

// The real thing: Debian's qbittorrent-nox (4.5.2), started here on loopback with a temporary
// profile, seeding a file made here from a .torrent made here. No tracker, no DHT, nothing leaves
// the machine. A missing binary fails the test (CI installs qbittorrent-nox).

const LIMITS = { maxQueueRecords: 5000, queuePageSize: 250, snapshotMaxItems: 500 };

let dir: string;
let qbt: Qbittorrent;
let nats: TestNatsServer;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'media-qbt-'));
  qbt = await startQbittorrent(dir);
  nats = await startNatsServer();
  await using nc = await connectAs(nats, 'media');
  await ensureStreams(nc, { streams: Streams.filter((s) => s.name === 'MEDIA') });
}, 60_000);
afterAll(async () => {
  await qbt?.stop();
  await nats?.[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

function spec(password: string, intervalMs = 100): TargetSpec {
  return { name: 'qbittorrent', kind: 'qbittorrent', url: qbt.url, username: 'admin', password, intervalMs, timeoutMs: 3000, maxResponseBytes: 8 * 1024 * 1024 };
}

const loginFailures = (): number => (qbt.log().match(/WebAPI login failure\. Reason: invalid credentials/g) ?? []).length;

describe('qBittorrent, for real', () => {
  it('runs with nothing that reaches out: WebUI and session on loopback, DHT/PeX/LSD/UPnP off', async () => {
    const prefs = await qbt.api('/api/v2/app/preferences') as Record<string, unknown>;
    expect(prefs).toMatchObject({
      web_ui_address: '127.0.0.1', current_interface_address: '127.0.0.1', current_network_interface: 'lo',
      dht: false, pex: false, lsd: false, upnp: false, resolve_peer_countries: false, rss_processing_enabled: false, add_trackers_enabled: false,
    });
    expect(await (await fetch(`${qbt.url}/api/v2/app/version`)).text()).toBe('Forbidden');
  });

  it('the media service logs in, sees a torrent seeded from a local file, and publishes its state', { timeout: 60_000 }, async () => {
    const config = writeMediaConfig(mkdtempSync(join(dir, 'svc-')), {
      natsUrl: nats.url, services: [{ name: 'qbittorrent', kind: 'qbittorrent', port: qbt.port, username: 'admin', password: qbt.password }],
      media: { intervals: { sonarr: 200, radarr: 200, prowlarr: 200, qbittorrent: 250, jellyfin: 200, immich: 200, storage: 60_000 }, timeoutMs: 3000 },
    });
    await using nc = await connectAs(nats, 'scripts');
    const events = await MediaEvents.open(nc);
    await using media = await startServiceProcess('media', { nats, env: { HOMELAB_CONFIG: config } });
    await media.waitForLog((l) => l['target'] === 'qbittorrent' && /baseline/.test(String(l['msg'])), 15_000);

    const data = randomBytes(300 * 1024);
    const seedDir = join(dir, 'seed');
    mkdirSync(seedDir, { recursive: true });
    writeFileSync(join(seedDir, 'homelab-sample.bin'), data);
    const { torrent, infoHash } = makeTorrent('homelab-sample.bin', data);
    await qbt.addTorrent(torrent, seedDir);

    const grabbed = await events.waitFor((e) => e.subject === 'media.download.grabbed' && e.data['downloadId'] === infoHash, 20_000, 'grabbed');
    expect(grabbed.data).toMatchObject({ source: 'qbittorrent', kind: 'qbittorrent', via: 'poll', title: 'homelab-sample.bin', size: data.length, protocol: 'torrent' });
    await events.waitFor((e) => e.subject === 'media.download.completed' && e.data['downloadId'] === infoHash, 20_000, 'completed');
    const transfer = await events.waitFor((e) => e.subject === 'media.transfer' && (e.data as unknown as MediaTransferSnapshot).torrents.some((t) => t.hash === infoHash && t.progress === 1), 20_000, 'a transfer snapshot with the torrent complete');
    const snapshot = transfer.data as unknown as MediaTransferSnapshot;
    expect(snapshot).toMatchObject({ version: 'v4.5.2', dhtNodes: 0, counts: { total: 1 } });
    expect(snapshot.torrents[0]).toMatchObject({ hash: infoHash, name: 'homelab-sample.bin', phase: 'completed', size: data.length, amountLeft: 0, savePath: expect.stringContaining('seed') });
    expect(['uploading', 'stalledUP', 'queuedUP', 'forcedUP']).toContain(snapshot.torrents[0]!.state);
    expect(snapshot.torrents[0]).not.toHaveProperty('tracker');
    expect(snapshot.torrents[0]).not.toHaveProperty('magnet_uri');

    const status = (await nc.request('media.status', undefined, { timeout: 5000 })).json<{ transfer: MediaTransferSnapshot[]; targets: { ok: boolean }[] }>();
    expect(status.targets[0]!.ok).toBe(true);
    expect(status.transfer[0]!.torrents.map((t) => t.hash)).toEqual([infoHash]);

    await sleep(1000); // more polls, now with sync/maindata deltas: no repeats
    await media.stop();
    expect(events.events.filter((e) => e.subject.startsWith('media.download.')).map((e) => e.subject)).toEqual(['media.download.grabbed', 'media.download.completed']);
    for (const e of events.events) expect(() => eventValidator(e.subject)!.parse(e.data)).not.toThrow();
    const everything = JSON.stringify(events.events) + JSON.stringify(media.logs) + media.stderr();
    expect(everything).not.toContain(qbt.password);
    expect(everything).not.toMatch(/SID=/);
    expect(loginFailures()).toBe(0);
    // One login for the whole run: deltas reuse the session.
    expect((qbt.log().match(/WebAPI login success/g) ?? []).length).toBeLessThanOrEqual(3);
    await events.close();
  });

  it('logs in again when its session expired (qBittorrent restarted)', { timeout: 60_000 }, async () => {
    const target = createQbittorrentTarget(spec(qbt.password), LIMITS, { maxLoginFailures: 3, loginRetryMs: 60_000 });
    const signal = new AbortController().signal;
    await target.poll(signal);
    await target.poll(signal);
    const logins = () => (qbt.log().match(/WebAPI login success/g) ?? []).length;
    const before = logins();
    await qbt.restart();
    const after = await target.poll(signal);
    expect(after.snapshots[0]).toMatchObject({ key: 'mediaTransfer', payload: { version: 'v4.5.2' } });
    await target.poll(signal);
    await sleep(500);
    expect(logins() - before).toBe(1);
    expect(loginFailures()).toBe(0);
  });

  it('a wrong password is an auth error, retried with backoff and then paused: no ban', { timeout: 60_000 }, async () => {
    const before = loginFailures();
    const target = createQbittorrentTarget(spec('wrong-password'), LIMITS, { maxLoginFailures: 3, loginRetryMs: 60_000 });
    const reasons: string[] = [];
    // 30 polls at the poller's interval: at least 3 s, well past the backoff's 200 + 400 ms.
    for (let poll = 0; poll < 30; poll++) {
      const err = await target.poll(new AbortController().signal).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(MediaError);
      reasons.push((err as MediaError).reason);
      expect((err as MediaError).message).not.toContain('wrong-password');
      await sleep(100);
    }
    expect(new Set(reasons)).toEqual(new Set(['auth']));
    // 1st, 2nd after 200 ms, 3rd after 400 ms; then paused for loginRetryMs. qBittorrent writes its
    // log asynchronously: wait for the third failure, then make sure no fourth follows.
    await expect.poll(() => loginFailures() - before, { timeout: 10_000 }).toBe(3);
    await sleep(1000);
    expect(loginFailures() - before).toBe(3);
    expect(qbt.log()).not.toMatch(/banned/i);
    const good = createQbittorrentTarget(spec(qbt.password), LIMITS, { maxLoginFailures: 3, loginRetryMs: 60_000 });
    await expect(good.poll(new AbortController().signal)).resolves.toMatchObject({ snapshots: [expect.objectContaining({ key: 'mediaTransfer' })] });
  });

  it('the media service reports the wrong password once, as media.service.error `auth`', { timeout: 60_000 }, async () => {
    const config = writeMediaConfig(mkdtempSync(join(dir, 'svc-bad-')), {
      natsUrl: nats.url, services: [{ name: 'qbt-wrong', kind: 'qbittorrent', port: qbt.port, username: 'admin', password: 'not-the-password-xyz' }],
      media: { intervals: { sonarr: 200, radarr: 200, prowlarr: 200, qbittorrent: 100, jellyfin: 200, immich: 200, storage: 60_000 } },
    });
    await using nc = await connectAs(nats, 'scripts');
    const events = await MediaEvents.open(nc);
    const before = loginFailures();
    await using media = await startServiceProcess('media', { nats, env: { HOMELAB_CONFIG: config } });
    const error = await events.waitFor((e) => e.subject === 'media.service.error' && e.data['source'] === 'qbt-wrong', 30_000, 'the auth error');
    expect(error.data).toMatchObject({ kind: 'qbittorrent', reason: 'auth', endpoint: '/api/v2/auth/login' });
    await sleep(2000);
    await media.stop();
    expect(events.events.filter((e) => e.subject === 'media.service.error' && e.data['source'] === 'qbt-wrong')).toHaveLength(1);
    await sleep(300);
    expect(loginFailures() - before).toBeLessThanOrEqual(3);
    expect(JSON.stringify(events.events) + JSON.stringify(media.logs)).not.toContain('not-the-password-xyz');
    await events.close();
  });

  it('a ban by qBittorrent is reported as `banned` and not hammered', { timeout: 30_000 }, async () => {
    // Another qBittorrent that bans after one failure, for a few seconds.
    const strict = await startQbittorrent(mkdtempSync(join(dir, 'strict-')), { maxAuthFailures: 1, banSeconds: 5 });
    try {
      const target = createQbittorrentTarget({ ...spec('wrong'), url: strict.url }, LIMITS, { maxLoginFailures: 3, loginRetryMs: 60_000 });
      const first = await target.poll(new AbortController().signal).then(() => undefined, (e: unknown) => e as MediaError);
      expect(first).toMatchObject({ reason: 'auth' });
      const fresh = createQbittorrentTarget({ ...spec('wrong'), url: strict.url }, LIMITS, { maxLoginFailures: 3, loginRetryMs: 60_000 });
      const banned = await fresh.poll(new AbortController().signal).then(() => undefined, (e: unknown) => e as MediaError);
      expect(banned).toMatchObject({ reason: 'banned', status: 403 });
      const again = await fresh.poll(new AbortController().signal).then(() => undefined, (e: unknown) => e as MediaError);
      expect(again).toMatchObject({ reason: 'banned', message: expect.stringContaining('next login attempt at') });
      await sleep(300);
      expect((strict.log().match(/IP has been banned/g) ?? []).length).toBe(1);
    } finally {
      await strict.stop();
    }
  });
});
