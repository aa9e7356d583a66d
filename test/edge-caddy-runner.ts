import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, freePort } from '@homelab/testing';
import { dieWithParent } from '@homelab/simulators';

/** The deployed Caddyfile; its `(gateway)` snippet is what the test runs. */
export const DEPLOY_CADDYFILE = join(REPO_ROOT, 'deploy', 'caddy', 'Caddyfile');
/** The upstream address the snippet proxies to on the ai-gateway VM. */
const DEPLOY_UPSTREAM = '127.0.0.1:8080';

export function findCaddy(): string | undefined {
  for (const candidate of [process.env['CADDY_BIN'], 'caddy', '/usr/bin/caddy']) {
    if (!candidate) continue;
    const r = spawnSync(candidate, ['version'], { encoding: 'utf8' });
    if (r.status === 0) return candidate;
  }
  return undefined;
}

/**
 * The `(gateway) { … }` snippet of the deployed Caddyfile, proxying to `upstream` instead of
 * 127.0.0.1:8080 and named `name`: the same directives the VM runs.
 */
export function gatewaySnippet(upstream: string, name = 'gateway', file = DEPLOY_CADDYFILE): string {
  const lines = readFileSync(file, 'utf8').split('\n');
  const start = lines.findIndex((l) => l.trim() === '(gateway) {');
  const end = lines.findIndex((l, i) => i > start && l === '}');
  if (start < 0 || end < 0) throw new Error(`${file}: no "(gateway) {" … "}" snippet (the edge test runs it)`);
  const snippet = lines.slice(start, end + 1).join('\n');
  const proxies = snippet.split(`reverse_proxy ${DEPLOY_UPSTREAM}`).length - 1;
  if (proxies !== 1) throw new Error(`${file}: the (gateway) snippet must have exactly one "reverse_proxy ${DEPLOY_UPSTREAM}" (found ${proxies})`);
  return snippet.replace(`reverse_proxy ${DEPLOY_UPSTREAM}`, `reverse_proxy ${upstream}`).replace('(gateway) {', `(${name}) {`);
}

export interface CaddyProcess {
  /** `http://127.0.0.1:PORT`: the gateway snippet over plain HTTP. */
  readonly httpUrl: string;
  /** `https://localhost:PORT` (listening on 127.0.0.1): the gateway snippet with `tls internal`. */
  readonly httpsUrl: string;
  readonly httpsPort: number;
  /** `http://127.0.0.1:PORT`: the same snippet in front of a port where nothing listens. */
  readonly deadUrl: string;
  /** PEM of the root of Caddy's internal CA (in the temporary data directory). */
  rootCert(): string;
  readonly proc: ChildProcess;
  readonly caddyfile: string;
  log(): string;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Debian's Caddy running the deployed `(gateway)` snippet in front of `upstream`, on loopback only:
 * plain HTTP, HTTPS with Caddy's internal CA, and a site whose upstream is down. Admin API off, no
 * ACME, no trust-store installation; its home, data and config directories are a temporary folder.
 */
export async function startCaddy(upstream: string): Promise<CaddyProcess> {
  const bin = findCaddy();
  if (!bin) throw new Error('caddy is not installed: `apt-get install caddy` (Debian 12 has 2.6.2; CI installs it from .ci/apt-packages)');
  const dir = mkdtempSync(join(tmpdir(), 'homelab-caddy-'));
  const [httpPort, httpsPort, deadPort, closedPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const caddyfile = join(dir, 'Caddyfile');
  writeFileSync(caddyfile, `{
	admin off
	skip_install_trust
	local_certs
	auto_https disable_redirects
	http_port ${httpPort}
	https_port ${httpsPort}
	storage file_system ${join(dir, 'storage')}
	servers {
		protocols h1 h2
	}
}

${gatewaySnippet(upstream)}

${gatewaySnippet(`127.0.0.1:${closedPort}`, 'dead')}

http://127.0.0.1:${httpPort} {
	bind 127.0.0.1
	import gateway
}

https://localhost:${httpsPort} {
	bind 127.0.0.1
	tls internal
	import gateway
}

http://127.0.0.1:${deadPort} {
	bind 127.0.0.1
	import dead
}
`);
  const proc = spawn(...dieWithParent(bin, ['run', '--config', caddyfile, '--adapter', 'caddyfile']), {
    cwd: dir,
    env: { PATH: process.env['PATH'] ?? '', HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout!.on('data', (b: Buffer) => { log += b.toString(); });
  proc.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Listening on all three ports, and the internal CA's certificate for localhost issued.
    const deadline = Date.now() + 15_000;
    for (const port of [httpPort, httpsPort, deadPort]) {
      while (!(await canConnect(port))) {
        if (proc.exitCode !== null) throw new Error(`caddy exited (${proc.exitCode}):\n${log}`);
        if (Date.now() > deadline) throw new Error(`caddy is not listening on 127.0.0.1:${port} after 15 s:\n${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    while (!/certificate obtained successfully/.test(log)) {
      if (Date.now() > deadline) throw new Error(`caddy obtained no internal certificate for localhost within 15 s:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    httpUrl: `http://127.0.0.1:${httpPort}`,
    httpsUrl: `https://localhost:${httpsPort}`,
    httpsPort,
    deadUrl: `http://127.0.0.1:${deadPort}`,
    rootCert: () => readFileSync(join(dir, 'storage', 'pki', 'authorities', 'local', 'root.crt'), 'utf8'),
    proc,
    caddyfile,
    log: () => log,
    [Symbol.asyncDispose]: stop,
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
