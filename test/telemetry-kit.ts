import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, freePort, type ServiceProcess, type TestStack } from '@homelab/testing';
import { dieWithParent } from '@homelab/simulators';

/*
 * Helpers of the telemetry end-to-end tests: the telemetry service on a loopback port, its
 * exposition read and checked with promtool, and a real Prometheus scraping it, all on 127.0.0.1.
 */

export interface RunningTelemetry {
  proc: ServiceProcess;
  /** `http://127.0.0.1:PORT` */
  url: string;
  port: number;
  scrape(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts `services/telemetry` as its own process (NATS user `telemetry`) and waits until it consumes. */
export async function startTelemetry(stack: TestStack, port?: number): Promise<RunningTelemetry> {
  // Port 0 unless a restart asks for its old one: the service binds a free port itself and logs it
  // (a port picked here and freed could be taken by a concurrently starting process).
  const proc = await stack.startService('telemetry', { METRICS_PORT: String(port ?? 0), METRICS_HOST: '127.0.0.1' });
  const metricsPort = port ?? Number((await proc.waitForLog((l) => typeof l['port'] === 'number' && String(l['msg']).startsWith('metrics on'))).port);
  const url = `http://127.0.0.1:${metricsPort}`;
  await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, 15_000, 'telemetry /readyz');
  return {
    proc, url, port: metricsPort,
    async scrape() {
      const res = await fetch(`${url}/metrics`);
      if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
      return res.text();
    },
    async stop() {
      const code = await proc.stop();
      if (code !== 0) throw new Error(`telemetry exited with ${code}: ${proc.stderr()}`);
    },
  };
}

export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The sum of the samples of `name` whose labels include `labels`, read from a text exposition
 * (the exact sample name: `homelab_gateway_requests_total`, `..._bucket`, `..._count`).
 */
export function sampleSum(exposition: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** Debian's `prometheus` package brings both; CI installs it (.ci/apt-packages). */
export function prometheusBinaries(): { prometheus: string; promtool: string } {
  const find = (name: string): string => {
    for (const candidate of [process.env[`${name.toUpperCase()}_BIN`], `/usr/bin/${name}`, name]) {
      if (candidate && spawnSync(candidate, ['--version']).status === 0) return candidate;
    }
    throw new Error(`${name} is not installed: apt-get install -y prometheus (Debian's package brings prometheus and promtool)`);
  };
  return { prometheus: find('prometheus'), promtool: find('promtool') };
}

/** `promtool check metrics` on an exposition (stdin): exit code and its complaints. */
export async function promtoolCheckMetrics(exposition: string): Promise<{ code: number | null; output: string }> {
  const { promtool } = prometheusBinaries();
  return new Promise((resolve, reject) => {
    const proc = spawn(promtool, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.on('data', (b: Buffer) => { output += b.toString(); });
    proc.stderr.on('data', (b: Buffer) => { output += b.toString(); });
    proc.once('error', reject);
    proc.once('exit', (code) => resolve({ code, output }));
    proc.stdin.end(exposition);
  });
}

export interface PromQueryResult {
  resultType: string;
  result: { metric: Record<string, string>; value: [number, string] }[];
}

export interface TestPrometheus {
  url: string;
  query(expr: string): Promise<PromQueryResult>;
  /** Waits until Prometheus scraped the target successfully at least once after now. */
  waitForScrape(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A real Prometheus on 127.0.0.1 with a temporary store, scraping only the given loopback targets
 * every second. Nothing else: no remote write, no service discovery, no alerting.
 */
export async function startPrometheus(targets: string[]): Promise<TestPrometheus> {
  for (const t of targets) if (!/^127\.0\.0\.1:\d+$/.test(t)) throw new Error(`test Prometheus scrapes loopback only, not ${t}`);
  const { prometheus } = prometheusBinaries();
  const dir = mkdtempSync(join(tmpdir(), 'homelab-prometheus-'));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(config, `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: homelab-telemetry\n    static_configs:\n      - targets: ${JSON.stringify(targets)}\n`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(...dieWithParent(prometheus, [
    `--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
    '--storage.tsdb.retention.time=1h', '--log.level=warn',
  ]), { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (b: Buffer) => { log += b.toString(); });
  proc.stderr.on('data', (b: Buffer) => { log += b.toString(); });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => (await fetch(`${url}/-/ready`)).status === 200, 20_000, `prometheus ready (log: ${log})`);
  } catch (err) {
    await stop();
    throw err;
  }
  const query = async (expr: string): Promise<PromQueryResult> => {
    const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
    const body = await res.json() as { status: string; data?: PromQueryResult; error?: string };
    if (body.status !== 'success' || !body.data) throw new Error(`PromQL ${expr}: ${body.error ?? res.status}`);
    return body.data;
  };
  return {
    url, query,
    async waitForScrape() {
      const since = Date.now() / 1000;
      await waitFor(async () => {
        const res = await fetch(`${url}/api/v1/targets`);
        const body = await res.json() as { data: { activeTargets: { health: string; lastScrape: string }[] } };
        return body.data.activeTargets.length > 0 && body.data.activeTargets.every((t) => t.health === 'up' && Date.parse(t.lastScrape) / 1000 > since + 0.5);
      }, 15_000, 'a fresh scrape');
    },
    [Symbol.asyncDispose]: stop,
  };
}

/** One OpenAI chat request to the ingress; returns the HTTP status after reading the whole answer. */
export async function chat(stack: TestStack, model: string, options: { stream?: boolean; headers?: Record<string, string> } = {}): Promise<number> {
  const res = await fetch(`${stack.ingressUrl}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...options.headers },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello there' }], ...(options.stream && { stream: true, stream_options: { include_usage: true } }) }),
  });
  await res.text();
  return res.status;
}

export async function embed(stack: TestStack, model: string): Promise<number> {
  const res = await fetch(`${stack.ingressUrl}/v1/embeddings`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, input: ['a', 'b'] }),
  });
  await res.text();
  return res.status;
}

export interface DashboardQuery { file: string; panel: string; expr: string }

/** Every PromQL expression of every panel of the provisioned dashboards (deploy/grafana/dashboards). */
export function dashboardQueries(): DashboardQuery[] {
  interface Panel { type: string; title: string; targets?: { expr: string }[]; panels?: Panel[] }
  const dir = join(REPO_ROOT, 'deploy', 'grafana', 'dashboards');
  return readdirSync(dir).filter((f) => f.endsWith('.json')).flatMap((file) => {
    const dashboard = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { panels: Panel[] };
    const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
    return panels.flatMap((panel) => (panel.targets ?? []).map((t) => ({ file, panel: panel.title, expr: t.expr })));
  });
}

/** Grafana's built-in variables, as Grafana would fill them for a recent time range. */
export function grafanaExpr(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s').replaceAll('$__range', '10m');
}
