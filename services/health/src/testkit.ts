import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/*
 * Loopback servers for the health tests: real HTTP, HTTPS (self-signed, made with the openssl
 * CLI), raw TCP. Not used by the service itself.
 */

export interface LocalServer {
  port: number;
  url: string;
  /** Requests seen, in order (method, url, headers, body). */
  requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }>;
  close(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

function track(server: http.Server | https.Server | net.Server): () => Promise<void> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('secureConnection', (s: net.Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  return () => new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
}

async function listen(server: net.Server, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

export async function startHttpServer(handler: Handler, options: { tls?: SelfSignedCert; port?: number } = {}): Promise<LocalServer> {
  const requests: LocalServer['requests'] = [];
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  };
  const server = options.tls ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, onRequest) : http.createServer(onRequest);
  const close = track(server);
  const port = await listen(server, options.port);
  return { port, url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`, requests, close };
}

/** A TCP server that runs `onConnection` for each client (send garbage, reset, stay silent…). */
export async function startTcpServer(onConnection: (socket: net.Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => { s.on('error', () => {}); onConnection(s); });
  const close = track(server);
  const port = await listen(server);
  return { port, close };
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export interface SelfSignedCert {
  key: string;
  cert: string;
}

export function hasOpenssl(): boolean {
  return spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0;
}

/** A self-signed certificate for `CN=localhost` / 127.0.0.1, valid for `days`. */
export function selfSignedCert(options: { days?: number; cn?: string } = {}): SelfSignedCert {
  const dir = mkdtempSync(join(tmpdir(), 'homelab-health-cert-'));
  try {
    const r = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      '-days', String(options.days ?? 30), '-subj', `/CN=${options.cn ?? 'localhost'}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it returns a truthy value or the time is up. */
export async function waitFor<T>(f: () => T | Promise<T>, timeoutMs = 5000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
