import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NATS_HASHES_FILE, hashesFileFor, inboxPrefixFor, writeNatsSecrets, type NatsUser } from '@homelab/bus';
import { PROJECT_NATS_CONF, REPO_ROOT, findNatsServer, freePort, type TestNatsServer } from '@homelab/testing';
import { dieWithParent } from '@homelab/simulators';

/*
 * The deploy/nats topologies on loopback, started from the real files: each server gets a folder laid
 * out as /etc/nats/ is on a node (the project's nats.conf, the deploy file, .secrets/ made by
 * `homelab setup`'s writer and deploy/nats/make-secrets.sh), and only the network addresses are
 * changed: client ports by command-line flags, leaf and route ports by editing the copied file
 * (every edit must match, so a changed deploy file fails here loudly instead of being tested wrongly).
 */

export const DEPLOY_NATS = join(REPO_ROOT, 'deploy', 'nats');

export interface NatsNode extends TestNatsServer {
  readonly name: string;
  /** The server's log so far (stderr). */
  log(): string;
  /** A hard stop (SIGKILL): what a machine losing power does to it. */
  kill(): Promise<void>;
  running(): boolean;
}

interface NodeSpec {
  name: string;
  /** The deploy file (under deploy/nats/) the server runs with. */
  conf: string;
  /** Other deploy files it includes, copied next to it. */
  with?: string[];
  /** Secret files to place in .secrets/ (name → content). */
  secrets: Record<string, string>;
  /** Edits of the copied deploy file: [what must be there, what replaces it]. */
  edits: [string | RegExp, string][];
  extraArgs?: string[];
}

/**
 * Copies deploy files into `dir`, applying each edit to the file that holds its text; every edit must
 * match somewhere, so a changed deploy file fails here loudly instead of being tested wrongly.
 */
function installFiles(dir: string, files: string[], edits: [string | RegExp, string][]): void {
  const used = new Set<number>();
  for (const file of files) {
    let text = readFileSync(join(DEPLOY_NATS, file), 'utf8');
    edits.forEach(([from, to], i) => {
      if (typeof from === 'string' ? text.includes(from) : from.test(text)) { text = text.replace(from, to); used.add(i); }
    });
    writeFileSync(join(dir, file.split('/').pop()!), text);
  }
  edits.forEach(([from], i) => {
    if (!used.has(i)) throw new Error(`${files.join(', ')}: expected to find ${String(from)} (the test moves it to a loopback port)`);
  });
}

const NO_HTTP: [RegExp, string] = [/^\s*http: 127\.0\.0\.1:8222\s*$/m, '# http: not in tests'];

async function startNode(root: string, passwordsFile: string, spec: NodeSpec, passwords: Record<NatsUser, string>): Promise<NatsNode> {
  const bin = findNatsServer();
  if (!bin) throw new Error('nats-server is not installed (apt-get install nats-server)');
  const dir = join(root, spec.name);
  mkdirSync(join(dir, '.secrets'), { recursive: true });
  copyFileSync(PROJECT_NATS_CONF, join(dir, 'nats.conf'));
  copyFileSync(hashesFileFor(passwordsFile), join(dir, '.secrets', NATS_HASHES_FILE));
  for (const [name, content] of Object.entries(spec.secrets)) writeFileSync(join(dir, '.secrets', name), content);
  const confBase = spec.conf.split('/').pop()!;
  installFiles(dir, [spec.conf, ...(spec.with ?? [])], spec.edits);

  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let log = '';
  const start = async (): Promise<void> => {
    log = '';
    const proc = spawn(...dieWithParent(bin, ['-c', join(dir, confBase), '-a', '127.0.0.1', '-p', String(port), '-sd', join(dir, 'js'), ...(spec.extraArgs ?? [])]), { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${spec.name}: nats-server did not start:\n${log}`)), 15_000);
      proc.stderr!.on('data', (b: Buffer) => {
        log += b.toString();
        if (/Server is ready/.test(log)) { clearTimeout(timer); resolve(); }
      });
      proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${spec.name}: nats-server exited with ${code}:\n${log}`)); });
    });
  };
  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await exited;
  };
  await start();
  return {
    name: spec.name, url, port, passwords, passwordsFile,
    envFor: (user) => ({ NATS_URL: url, NATS_USER: user, NATS_PASSWORD: passwords[user] }),
    log: () => log,
    running: () => !!child && child.exitCode === null && child.signalCode === null,
    kill: () => stopWith('SIGKILL'),
    stop: () => stopWith('SIGTERM'),
    start,
    async restart({ downMs = 0 } = {}) {
      await stopWith('SIGTERM');
      if (downMs) await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    async [Symbol.asyncDispose]() { await stopWith('SIGKILL'); },
  };
}

/** Runs deploy/nats/make-secrets.sh into `dir` and reads what it wrote. */
export function makeDeploySecrets(dir: string, args: string[]): Record<string, string> {
  const r = spawnSync('bash', [join(DEPLOY_NATS, 'make-secrets.sh'), '-o', dir, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make-secrets.sh failed (${r.status}): ${r.stderr}`);
  const read = (p: string): string => readFileSync(join(dir, p), 'utf8');
  const out: Record<string, string> = {
    'hub/nats-leaf-users.conf': read('hub/nats-leaf-users.conf'),
    'ai-node/nats-leaf-remote.conf': read('ai-node/nats-leaf-remote.conf'),
    'media-node/nats-leaf-remote.conf': read('media-node/nats-leaf-remote.conf'),
  };
  if (args.includes('--cluster') || args.includes('--routes')) out['hub/nats-cluster.conf'] = read('hub/nats-cluster.conf');
  return out;
}

export interface DeployedNats extends AsyncDisposable {
  root: string;
  passwords: Record<NatsUser, string>;
  /** The hub's servers (one, or three for the cluster). */
  hubs: NatsNode[];
  leaves: Partial<Record<'ai-node' | 'media-node', NatsNode>>;
  /** What the leaves dial for hub server `i`: a relay to its leaf port that a test can cut. */
  leafLinks: TcpProxy[];
  /** `nats://…,nats://…` of every hub server, as a service's NATS_URL lists them. */
  hubUrls: string;
}

export interface DeployOptions {
  /** 1: deploy/nats/hub.conf; 3: deploy/nats/cluster/hub-{1,2,3}.conf. */
  hubServers: 1 | 3;
  leaves?: ('ai-node' | 'media-node')[];
}

/**
 * Starts the hub (one server or the three-server cluster) and the asked leaf nodes, each from its
 * deploy file. The leaves reach the hub through a TCP proxy per hub server, so a test can cut the
 * link (a "WAN" cut) while every server keeps running.
 */
export async function startDeployedNats(options: DeployOptions): Promise<DeployedNats> {
  const root = mkdtempSync(join(tmpdir(), 'homelab-deploy-nats-'));
  const passwordsFile = join(root, 'nats-passwords.conf');
  const passwords = writeNatsSecrets(passwordsFile, { cost: 4 });
  const hubs: NatsNode[] = [];
  const leaves: DeployedNats['leaves'] = {};
  const leafLinks: TcpProxy[] = [];
  const dispose = async (): Promise<void> => {
    await Promise.allSettled(Object.values(leaves).map((l) => l[Symbol.asyncDispose]()));
    await Promise.allSettled(hubs.map((h) => h[Symbol.asyncDispose]()));
    await Promise.allSettled(leafLinks.map((p) => p.close()));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    const n = options.hubServers;
    const leafPorts = await Promise.all(Array.from({ length: n }, () => freePort()));
    const routePorts = await Promise.all(Array.from({ length: n }, () => freePort()));
    for (let i = 0; i < n; i++) leafLinks.push(await startTcpProxy());
    const secretArgs = ['--hub', leafLinks.map((l) => `127.0.0.1:${l.port}`).join(',')];
    if (n === 3) secretArgs.push('--routes', routePorts.map((p) => `127.0.0.1:${p}`).join(','));
    const secrets = makeDeploySecrets(join(root, 'secrets'), secretArgs);

    const starts = Array.from({ length: n }, (_, i) => {
      const spec: NodeSpec = n === 1
        ? { name: 'hub', conf: 'hub.conf', secrets: { 'nats-leaf-users.conf': secrets['hub/nats-leaf-users.conf']! }, edits: [[/^(\s*)port: 7422$/m, `$1port: ${leafPorts[i]}`], NO_HTTP] }
        : {
          name: `hub-${i + 1}`, conf: `cluster/hub-${i + 1}.conf`, with: ['cluster/hub-cluster.conf'],
          secrets: { 'nats-leaf-users.conf': secrets['hub/nats-leaf-users.conf']!, 'nats-cluster.conf': secrets['hub/nats-cluster.conf']! },
          edits: [[/^(\s*)port: 7422$/m, `$1port: ${leafPorts[i]}`], [/^(\s*)port: 6222$/m, `$1port: ${routePorts[i]}`], [/^(\s*)host: 0\.0\.0\.0$/m, '$1host: 127.0.0.1'], NO_HTTP],
          extraArgs: ['--cluster_listen', `nats://127.0.0.1:${routePorts[i]}`],
        };
      return startNode(root, passwordsFile, spec, passwords);
    });
    hubs.push(...await Promise.all(starts));
    // Each proxy forwards to its hub server's leaf port: the link the leaves use.
    leafLinks.forEach((l, i) => l.setTarget(leafPorts[i]!));
    await waitForJetStream(hubs[0]!, passwords);

    for (const leaf of options.leaves ?? []) {
      leaves[leaf] = await startNode(root, passwordsFile, {
        name: leaf, conf: `leaf-${leaf}.conf`,
        secrets: { 'nats-leaf-remote.conf': secrets[`${leaf}/nats-leaf-remote.conf`]! },
        edits: [NO_HTTP],
      }, passwords);
    }
    for (const leaf of Object.values(leaves)) await waitForLeafLink(leaf);
  } catch (err) {
    await dispose();
    throw err;
  }
  return {
    root, passwords, hubs, leaves, leafLinks,
    hubUrls: hubs.map((h) => h.url).join(','),
    [Symbol.asyncDispose]: dispose,
  };
}

/** Waits until JetStream answers on `node` (a cluster has elected its meta leader). */
export async function waitForJetStream(node: NatsNode, passwords: Record<NatsUser, string>, timeoutMs = 20_000): Promise<void> {
  const nc = await connect({ servers: node.url, user: 'scripts', pass: passwords.scripts });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const reply = await nc.request('$JS.API.INFO', undefined, { timeout: 1000 });
        const body = JSON.parse(reply.string()) as { error?: unknown };
        if (!body.error) return;
      } catch { /* not yet */ }
      if (Date.now() > deadline) throw new Error(`JetStream not ready on ${node.name}:\n${node.log().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await nc.close();
  }
}

/** Waits until the leaf's log says its link to the hub is up (again, after `since` characters of log). */
export async function waitForLeafLink(leaf: NatsNode, since = 0, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!/Leafnode connection created/.test(leaf.log().slice(since))) {
    if (Date.now() > deadline) throw new Error(`${leaf.name}: no leaf connection to the hub:\n${leaf.log().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A connection to `node` as a project user, with that user's inbox prefix. */
export async function connectNode(node: { url: string }, passwords: Record<NatsUser, string>, user: NatsUser, servers?: string): Promise<NatsConnection> {
  return connect({ servers: (servers ?? node.url).split(','), user, pass: passwords[user], inboxPrefix: inboxPrefixFor(user), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
}

export interface TcpProxy {
  readonly port: number;
  setTarget(port: number): void;
  /** Drops every connection and refuses new ones: the link is cut. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/** A loopback TCP relay whose link can be cut and restored. */
export async function startTcpProxy(port?: number): Promise<TcpProxy> {
  let target = 0;
  let isCut = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (isCut || !target) { client.destroy(); return; }
    const upstream = tcpConnect({ port: target, host: '127.0.0.1' });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port ?? 0, '127.0.0.1', () => resolve()); });
  const actual = (server.address() as { port: number }).port;
  return {
    port: actual,
    setTarget(p) { target = p; },
    cut() { isCut = true; for (const s of sockets) s.destroy(); },
    restore() { isCut = false; },
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}
