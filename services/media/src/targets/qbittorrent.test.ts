import { describe, expect, it } from 'vitest';
import { MediaError } from '../errors.ts';
import { LoginGate, toTorrent, torrentObservations, transferSnapshot, type QbTorrent } from './qbittorrent.ts';

const LOGIN = { endpoint: '/api/v2/auth/login', status: 401 };
const NOW = Date.UTC(2026, 0, 1);

function refusal(gate: LoginGate, now: number): MediaError {
  try {
    gate.check(now);
  } catch (err) {
    expect(err).toBeInstanceOf(MediaError);
    return err as MediaError;
  }
  throw new Error('the gate let a login through');
}

describe('when qBittorrent may be asked to log in again', () => {
  const options = { maxLoginFailures: 3, loginRetryMs: 3_600_000 };

  it('a refused password doubles the wait from the poll interval, then pauses for loginRetryMs', () => {
    const gate = new LoginGate(options, 10_000);
    expect(() => gate.check(NOW)).not.toThrow();
    expect(gate.refused(LOGIN, NOW).message).toBe(`/api/v2/auth/login: username or password refused (1 of 3 attempts before pausing); next login attempt at ${new Date(NOW + 20_000).toISOString()}`);
    expect(refusal(gate, NOW + 19_999)).toMatchObject({ reason: 'auth', message: expect.stringMatching(/^login paused after 1 failed attempt \(wrong username or password\?\)/) as string });
    expect(() => gate.check(NOW + 20_000)).not.toThrow();
    gate.refused(LOGIN, NOW);
    expect(() => gate.check(NOW + 39_999)).toThrow(/after 2 failed attempts/);
    expect(() => gate.check(NOW + 40_000)).not.toThrow();
    gate.refused(LOGIN, NOW);
    expect(() => gate.check(NOW + 3_599_999)).toThrow(/after 3 failed attempts/);
    expect(() => gate.check(NOW + 3_600_000)).not.toThrow();
  });

  it('the doubling never waits longer than loginRetryMs', () => {
    const gate = new LoginGate({ maxLoginFailures: 10, loginRetryMs: 60_000 }, 50_000);
    gate.refused(LOGIN, NOW);
    expect(() => gate.check(NOW + 59_999)).toThrow();
    expect(() => gate.check(NOW + 60_000)).not.toThrow();
  });

  it('a ban pauses logins for loginRetryMs, saying so', () => {
    const gate = new LoginGate(options, 10_000);
    expect(gate.banned({ endpoint: '/api/v2/auth/login' }, NOW)).toMatchObject({ reason: 'banned', status: 403 });
    expect(refusal(gate, NOW + 3_599_999)).toMatchObject({ reason: 'banned', message: `qBittorrent banned this IP after failed logins; next login attempt at ${new Date(NOW + 3_600_000).toISOString()}` });
  });

  it('a login that succeeds starts the count again', () => {
    const gate = new LoginGate(options, 10_000);
    gate.refused(LOGIN, NOW);
    gate.refused(LOGIN, NOW);
    gate.succeeded();
    expect(() => gate.check(NOW)).not.toThrow();
    expect(gate.refused(LOGIN, NOW).message).toContain('(1 of 3 attempts before pausing)');
  });
});

describe('the transfer snapshot and the downloads it observes', () => {
  const qb = (fields: QbTorrent): QbTorrent => ({ size: 100, amount_left: 0, ...fields });
  const torrents = [
    toTorrent('AAAA', qb({ name: 'old seed', state: 'stalledUP', progress: 1, added_on: 1_700_000_000 })),
    toTorrent('BBBB', qb({ name: 'half', state: 'downloading', progress: 0.5, dlspeed: 1000, added_on: 1_700_000_100 })),
    toTorrent('CCCC', qb({ name: 'nearly', state: 'downloading', progress: 0.9, added_on: 1_700_000_050 })),
    toTorrent('DDDD', qb({ name: 'paused', state: 'pausedDL', progress: 0.2, added_on: 1_700_000_300 })),
    toTorrent('EEEE', qb({ name: 'broken', state: 'missingFiles', progress: 0.3, added_on: 1_700_000_200 })),
    toTorrent('FFFF', qb({ name: 'checking', state: 'checkingDL', progress: 0.1, added_on: 1_700_000_400 })),
    toTorrent('GGGG', qb({ name: 'sharing', state: 'uploading', progress: 1, upspeed: 500, added_on: 1_700_000_010 })),
  ];
  const server = { connection_status: 'connected', dl_info_speed: 1000, up_info_speed: 500, dht_nodes: 300, free_space_on_disk: 5e11 };

  it('counts the torrents by state and lists the active ones first, the most advanced download first', () => {
    const snapshot = transferSnapshot('qbittorrent', torrents, server, 'v4.5.2', 50, '2026-01-01T00:00:00.000Z');
    expect(snapshot).toMatchObject({
      source: 'qbittorrent', kind: 'qbittorrent', version: 'v4.5.2', connectionStatus: 'connected', dlSpeed: 1000, upSpeed: 500, dhtNodes: 300, freeSpaceOnDisk: 5e11,
      counts: { total: 7, downloading: 2, seeding: 2, paused: 1, checking: 1, errored: 1 }, truncated: false,
    });
    expect(snapshot.torrents.map((t) => t.name)).toEqual(['nearly', 'half', 'checking', 'sharing', 'broken', 'paused', 'old seed']);
    expect(snapshot.torrents[0]!.hash).toBe('cccc');
  });

  it('keeps maxItems torrents and says it cut; an unknown free space is left out', () => {
    const snapshot = transferSnapshot('qbittorrent', torrents, { free_space_on_disk: -1 }, undefined, 2, 'now');
    expect(snapshot.torrents).toHaveLength(2);
    expect(snapshot.truncated).toBe(true);
    expect(snapshot).not.toHaveProperty('freeSpaceOnDisk');
    expect(snapshot).not.toHaveProperty('version');
    expect(snapshot.connectionStatus).toBe('unknown');
  });

  it('observes every torrent by its hash, a failed one with why', () => {
    const observations = torrentObservations('qbittorrent', torrents);
    expect(observations).toHaveLength(7);
    expect(observations.find((o) => o.rawId === 'eeee')).toMatchObject({
      state: 'failed', info: { title: 'broken', protocol: 'torrent', downloadClient: 'qbittorrent', reason: 'qBittorrent: files missing' },
    });
    expect(observations.find((o) => o.rawId === 'aaaa')).toMatchObject({ state: 'completed' });
    expect(observations.find((o) => o.rawId === 'bbbb')!.info).not.toHaveProperty('reason');
  });
});
