import { spawn, spawnSync } from 'node:child_process';
import { createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { dieWithParent } from './process.ts';

/*
 * The real qBittorrent (Debian's qbittorrent-nox) on loopback, for the media tests and the demo: a
 * private profile, nothing that reaches out, and helpers to make torrents of local files.
 */

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}


/** Bencoding (BEP 3): what a .torrent file is made of. */
export function bencode(value: unknown): Buffer {
  if (typeof value === 'number') return Buffer.from(`i${Math.trunc(value)}e`);
  if (typeof value === 'string') return bencode(Buffer.from(value));
  if (Buffer.isBuffer(value)) return Buffer.concat([Buffer.from(`${value.length}:`), value]);
  if (Array.isArray(value)) return Buffer.concat([Buffer.from('l'), ...value.map(bencode), Buffer.from('e')]);
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return Buffer.concat([Buffer.from('d'), ...entries.flatMap(([k, v]) => [bencode(k), bencode(v)]), Buffer.from('e')]);
  }
  throw new Error(`cannot bencode ${typeof value}`);
}

/** A single-file torrent of `data` without trackers (nothing to announce to); returns the file and the v1 info hash. */
export function makeTorrent(name: string, data: Buffer, pieceLength = 16_384): { torrent: Buffer; infoHash: string } {
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += pieceLength) pieces.push(createHash('sha1').update(data.subarray(i, i + pieceLength)).digest());
  const info = { name, length: data.length, 'piece length': pieceLength, pieces: Buffer.concat(pieces), private: 1 };
  return { torrent: bencode({ info, 'created by': 'homelab-gateway tests', 'creation date': 1_790_000_000 }), infoHash: createHash('sha1').update(bencode(info)).digest('hex') };
}

/** qBittorrent's `WebUI\Password_PBKDF2`: PBKDF2-HMAC-SHA512, 100 000 rounds, 16-byte salt, as 4.2+ stores it. */
export function qbittorrentPasswordHash(password: string): string {
  const salt = randomBytes(16);
  const hash = pbkdf2Sync(password, salt, 100_000, 64, 'sha512');
  return `@ByteArray(${salt.toString('base64')}:${hash.toString('base64')})`;
}

export function findQbittorrent(): string | undefined {
  for (const bin of [process.env['QBITTORRENT_NOX_BIN'], 'qbittorrent-nox', '/usr/bin/qbittorrent-nox']) {
    if (!bin) continue;
    if (spawnSync(bin, ['--version'], { encoding: 'utf8' }).status === 0) return bin;
  }
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface Qbittorrent {
  readonly url: string;
  readonly port: number;
  readonly password: string;
  readonly profile: string;
  /** The lines of qBittorrent's own log file so far. */
  log(): string;
  /** Adds a .torrent through the API (its own session) with `savepath`. */
  addTorrent(torrent: Buffer, savePath: string, options?: { category?: string }): Promise<void>;
  /** The API with a session of its own (for checks). */
  api(path: string): Promise<unknown>;
  /** A POST of form fields to the API with that session (torrents/addPeers, torrents/setDownloadLimit…); the answer's text. */
  post(path: string, form: Record<string, string>): Promise<string>;
  /** The BitTorrent session's listening port (on 127.0.0.1). */
  readonly peerPort: number;
  /** Stops and starts it again, same profile and port: every session (SID) is gone. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts Debian's qbittorrent-nox (4.5.2) on loopback with a temporary profile: WebUI on
 * 127.0.0.1 only, the BitTorrent session bound to `lo`, and everything that would reach out
 * (DHT, PeX, LSD, UPnP/NAT-PMP, trackers, GeoIP download, RSS) off before it first starts.
 */
export async function startQbittorrent(dir: string, options: { maxAuthFailures?: number; banSeconds?: number; port?: number; password?: string } = {}): Promise<Qbittorrent> {
  const bin = findQbittorrent();
  if (!bin) throw new Error('qbittorrent-nox is not installed. This test needs the real one: `apt-get install -y qbittorrent-nox` (Debian 12 ships 4.5.2); CI installs it.');
  const profile = join(dir, 'qbt-profile');
  const configDir = join(profile, 'qBittorrent', 'config');
  mkdirSync(configDir, { recursive: true });
  const [port, peerPort] = [options.port || await freePort(), await freePort()];
  const password = options.password ?? randomBytes(12).toString('base64url');
  writeFileSync(join(configDir, 'qBittorrent.conf'), [
    '[LegalNotice]', 'Accepted=true', '',
    '[BitTorrent]', 'Session\\DHTEnabled=false', 'Session\\PeXEnabled=false', 'Session\\LSDEnabled=false', 'Session\\Interface=lo', 'Session\\InterfaceName=lo',
    'Session\\InterfaceAddress=127.0.0.1', `Session\\Port=${peerPort}`, 'Session\\AddTrackersEnabled=false', 'Session\\AnonymousModeEnabled=true',
    'Session\\QueueingSystemEnabled=false', `Session\\DefaultSavePath=${join(dir, 'downloads')}`, '',
    '[Network]', 'PortForwardingEnabled=false', '',
    '[Preferences]', 'Connection\\UPnP=false', 'Connection\\ResolvePeerCountries=false', 'Advanced\\updateCheck=false', 'General\\Locale=en',
    'WebUI\\Address=127.0.0.1', `WebUI\\Port=${port}`, 'WebUI\\LocalHostAuth=true', 'WebUI\\Username=admin', `WebUI\\Password_PBKDF2="${qbittorrentPasswordHash(password)}"`,
    `WebUI\\MaxAuthenticationFailCount=${options.maxAuthFailures ?? 5}`, `WebUI\\BanDuration=${options.banSeconds ?? 3600}`, '',
    '[RSS]', 'Session\\EnableProcessing=false', 'AutoDownloader\\EnableProcessing=false', '',
  ].join('\n'));
  const url = `http://127.0.0.1:${port}`;
  let proc: ReturnType<typeof spawn>;
  let exited: Promise<void>;
  let output = '';
  const launch = async (): Promise<void> => {
    proc = spawn(...dieWithParent(bin, [`--webui-port=${port}`, `--profile=${profile}`]), { env: { PATH: process.env['PATH'] ?? '', HOME: dir, LANG: 'C.UTF-8' }, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout?.on('data', (b: Buffer) => { output += b.toString(); });
    proc.stderr?.on('data', (b: Buffer) => { output += b.toString(); });
    const child = proc;
    exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`qbittorrent-nox exited with ${child.exitCode}:\n${output}`);
      try {
        const res = await fetch(`${url}/api/v2/app/version`);
        if (res.status === 403 || res.status === 200) return;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`qbittorrent-nox did not answer on ${url}:\n${output}`); }
      await sleep(100);
    }
  };
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null) proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  await launch();
  let sid: string | undefined;
  const session = async (): Promise<string> => {
    if (sid) return sid;
    const res = await fetch(`${url}/api/v2/auth/login`, { method: 'POST', body: new URLSearchParams({ username: 'admin', password }) });
    const cookie = res.headers.getSetCookie().map((c) => /^SID=([^;]+)/.exec(c)?.[1]).find(Boolean);
    if (!cookie) throw new Error(`test login to qBittorrent failed: HTTP ${res.status} ${await res.text()}`);
    sid = cookie;
    return sid;
  };
  return {
    url, port, password, profile, peerPort,
    log: () => { try { return readFileSync(join(profile, 'qBittorrent', 'data', 'logs', 'qbittorrent.log'), 'utf8'); } catch { return ''; } },
    async addTorrent(torrent, savePath, addOptions = {}) {
      const form = new FormData();
      form.append('torrents', new Blob([torrent], { type: 'application/x-bittorrent' }), 'test.torrent');
      form.append('savepath', savePath);
      if (addOptions.category) form.append('category', addOptions.category);
      const res = await fetch(`${url}/api/v2/torrents/add`, { method: 'POST', body: form, headers: { cookie: `SID=${await session()}` } });
      const text = await res.text();
      if (res.status !== 200 || text.trim() !== 'Ok.') throw new Error(`torrents/add: HTTP ${res.status} ${text}`);
    },
    async api(path) {
      const res = await fetch(`${url}${path}`, { headers: { cookie: `SID=${await session()}` } });
      return res.json();
    },
    async post(path, form) {
      const res = await fetch(`${url}${path}`, { method: 'POST', body: new URLSearchParams(form), headers: { cookie: `SID=${await session()}` } });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} ${text}`);
      return text;
    },
    async restart() {
      await stop();
      sid = undefined;
      await launch();
    },
    stop,
  };
}
