import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import type { HealthSnapshot, MediaStatus } from '@homelab/bus';
import { freePorts, minimalLabYaml, runCli, startCli, type CliProcess } from './helpers/homelab-cli.ts';
import { dashboardQueries, grafanaExpr, sampleSum, startPrometheus, waitFor, type TestPrometheus } from './telemetry-kit.ts';

// `npm run demo` as a newcomer runs it: the whole lab simulated on loopback, a "ready" block once
// the API is ready, every dashboard panel alive in a real Prometheus, every `homelab` command
// answering; and the demo's data kept apart from the lab's, both ways.

/** Panels that only show something when something fails: the demo does not stage failures. */
const NEEDS_A_FAILURE = new Set(['Fallbacks (range)', 'Retries on the same backend (range)', 'Fallbacks / s', 'Failed and degraded probes / s', 'Service errors (range)', 'Image job failures by reason (range)']);

let dir: string;
let demoDir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'homelab-demo-test-'));
  demoDir = join(dir, 'demo');
});
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

interface Ready { apiUrl: string; natsUrl: string; metricsUrl: string; key: string | undefined }

/** The addresses the ready block gives, read as a person reads them. */
function readBlock(output: string): Ready {
  const block = output.slice(output.indexOf('The demo is ready.'));
  const apiUrl = /API \(OpenAI-compatible\)\s+(http:\/\/\S+)\/v1/.exec(block)?.[1];
  const natsUrl = /NATS\s+(nats:\/\/\S+)/.exec(block)?.[1];
  const metricsUrl = /metrics\s+(http:\/\/\S+\/metrics)/.exec(block)?.[1];
  const key = /API key \(made for this demo; keys are on\)\s+(hlk_\S+)/.exec(block)?.[1];
  if (!apiUrl || !natsUrl || !metricsUrl) throw new Error(`no addresses in the ready block:\n${block}`);
  return { apiUrl, natsUrl, metricsUrl, key };
}

const demoEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
  HOMELAB_DEMO_DIR: demoDir, HOMELAB_DEMO_PORTS: 'free', HOMELAB_DEMO_TICK_MS: '400', HOMELAB_DEMO_TRAFFIC_MS: '600', HOMELAB_AUTH: 'keys',
  // The nats CLI context the demo writes lands here, not in the real home directory.
  XDG_CONFIG_HOME: join(dir, 'config'), ...extra,
});

describe('npm run demo', () => {
  let demo: CliProcess;
  let ready: Ready;
  let prometheus: TestPrometheus | undefined;
  const asScript = (): Record<string, string> => ({ NATS_URL: ready.natsUrl, HOMELAB_DEMO_DIR: demoDir });

  beforeAll(async () => {
    demo = startCli(['demo'], demoEnv());
    await demo.waitFor(/The demo is ready\.[\s\S]*─{20}\n/, 120_000);
    ready = readBlock(demo.output());
  }, 150_000);
  afterAll(async () => {
    await prometheus?.[Symbol.asyncDispose]();
    await demo?.stop();
  }, 60_000);

  it('says where it keeps its data at start, and prints one ready block once the API is ready', async () => {
    const out = demo.output();
    expect(out).toContain(`demo: everything it keeps is in ${demoDir}`);
    expect(out).toMatch(new RegExp(`demo data in ${demoDir}/data, NATS secrets in ${demoDir}/secrets`));
    expect(out.match(/The demo is ready\./g)).toHaveLength(1);
    // Nothing to try before it is ready.
    expect(out.slice(0, out.indexOf('The demo is ready.'))).not.toMatch(/curl|Try/);
    expect((await fetch(`${ready.apiUrl}/readyz`)).status).toBe(200);
    expect(ready.key).toMatch(/^hlk_/);
    const block = out.slice(out.indexOf('The demo is ready.'));
    expect(block).toContain(`curl -sN ${ready.apiUrl}/v1/chat/completions -H 'authorization: Bearer ${ready.key}'`);
    expect(block).toMatch(/homelab chat -m fast "hello"/);
    // The ready block's own curl works as written (here without a shell: the same request).
    const res = await fetch(`${ready.apiUrl}/v1/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${ready.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'smart', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/data: \[DONE\]/);
  });

  it('writes the nats CLI context homelab-demo (its NATS, as scripts; mode 600) that the ready block names', async () => {
    const block = demo.output().slice(demo.output().indexOf('The demo is ready.'));
    expect(block).toContain(`nats --context homelab-demo sub 'health.>'`);
    const file = join(dir, 'config', 'nats', 'context', 'homelab-demo.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const context = JSON.parse(readFileSync(file, 'utf8')) as { url: string; user: string; password: string };
    expect(context).toMatchObject({ url: ready.natsUrl, user: 'scripts' });
    expect(existsSync(join(dir, 'config', 'nats', 'context.txt'))).toBe(false);
    // What the nats CLI does with it, with a plain NATS client: in, with the scripts' permissions.
    const nc = await connect({ servers: context.url, user: context.user, pass: context.password });
    try {
      expect((await nc.request('health.status', undefined, { timeout: 5000 })).json<HealthSnapshot>().targets.length).toBeGreaterThan(0);
    } finally {
      await nc.close();
    }
  });

  it('every homelab command shows the whole lab alive', { timeout: 120_000 }, async () => {
    const env = asScript();
    // The media node's story: downloads progress in Sonarr/Radarr and qBittorrent, a stream plays.
    let media: MediaStatus | undefined;
    await waitFor(async () => {
      const r = await runCli(['media', '--json'], env);
      media = JSON.parse(r.stdout) as MediaStatus;
      return media.queue.some((q) => q.items.length > 0) && media.transfer.some((t) => t.torrents.length > 0) && media.targets.length === 6 && media.targets.every((t) => t.lastSuccessAt);
    }, 60_000, 'the media node busy');
    expect(media!.targets.map((t) => t.kind).sort()).toEqual(['immich', 'jellyfin', 'prowlarr', 'qbittorrent', 'radarr', 'sonarr']);
    expect(media!.storage?.paths.map((p) => p.path)).toEqual(['media', 'downloads', 'photos'].map((p) => join(demoDir, 'storage', p)));
    expect(media!.storage?.paths.every((p) => p.ok)).toBe(true);
    await waitFor(async () => JSON.parse((await runCli(['media', 'playing', '--json'], env)).stdout).sessions.some((s: MediaStatus['sessions'][number]) => s.streams.length > 0), 60_000, 'someone watching');

    let status: HealthSnapshot | undefined;
    await waitFor(async () => {
      const r = await runCli(['status', '--json'], env);
      status = JSON.parse(r.stdout) as HealthSnapshot;
      return r.code === 0 && status.targets.every((t) => t.state === 'up') && status.targets.some((t) => t.node === 'gateway' && t.service === 'router');
    }, 60_000, 'every target up');
    expect(new Set(status!.targets.map((t) => t.node))).toEqual(new Set(['ai-node', 'media-node', 'ai-gateway', 'gateway']));

    const models = await runCli(['models', '--json'], env);
    expect(models.code).toBe(0);
    expect((JSON.parse(models.stdout) as { data: { id: string }[] }).data.map((m) => m.id)).toEqual(expect.arrayContaining(['Qwen/Qwen2.5-7B-Instruct', 'llama3.2:3b', 'claude-sonnet-5-5', 'gpt-5.4-mini', 'smart']));
    const chat = await runCli(['chat', '-m', 'fast', 'hello'], env);
    expect(chat.code).toBe(0);
    expect(chat.stdout.trim().length).toBeGreaterThan(10);
    const keys = await runCli(['keys', 'list', '--json'], env);
    expect(keys.code).toBe(0);
    expect((JSON.parse(keys.stdout) as { name: string }[]).map((k) => k.name)).toEqual([expect.stringMatching(/^demo-/)]);
  });

  it('every dashboard panel has data in a real Prometheus scraping the demo, but those that need a failure', { timeout: 240_000 }, async () => {
    prometheus = await startPrometheus([new URL(ready.metricsUrl).host]);
    // Long enough for the story to go round: an import, a playback that ended, cloud requests with a price.
    await waitFor(async () => {
      const text = await (await fetch(ready.metricsUrl)).text();
      return sampleSum(text, 'homelab_media_downloads_total', { phase: 'imported' }) >= 1
        && sampleSum(text, 'homelab_media_stream_duration_seconds_count') >= 1
        && sampleSum(text, 'homelab_media_webhooks_total') >= 2
        && sampleSum(text, 'homelab_gateway_cost_usd_total') > 0
        && sampleSum(text, 'homelab_gateway_route_skips_total') >= 1;
    }, 180_000, 'the demo story to go round');
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(60);
    const panelsWithoutData = async (): Promise<string[]> => {
      const empty = new Map<string, string>();
      for (const q of queries) {
        const data = await prometheus!.query(grafanaExpr(q.expr));
        if (!data.result.some((r) => Number.isFinite(Number(r.value[1])))) empty.set(q.panel, `${q.file} "${q.panel}": ${q.expr}`);
      }
      return [...empty].filter(([panel]) => !NEEDS_A_FAILURE.has(panel)).map(([, what]) => what);
    };
    // Rates and quantiles need samples that moved within their window: Prometheus started just now,
    // so the panels fill in as it scrapes the demo going on (a playback must end within its range too).
    let withoutData: string[] = [];
    await waitFor(async () => (withoutData = await panelsWithoutData()).length === 0, 150_000, 'every panel with data').catch(() => {});
    expect(withoutData, `panels without data:\n${withoutData.join('\n')}`).toEqual([]);
    // The failure panels are real panels of the dashboards (the list is not stale).
    for (const panel of NEEDS_A_FAILURE) expect(queries.some((q) => q.panel === panel), panel).toBe(true);
  });
});

describe('the demo and the lab keep apart', () => {
  it('a key and health records made in one are never seen by the other; homelab demo --reset forgets the demo', { timeout: 300_000 }, async () => {
    const labDir = join(dir, 'lab');
    const [gatewayPort, metricsPort, natsPort] = await freePorts(3);
    const labConfig = join(dir, 'lab.yaml');
    writeFileSync(labConfig, minimalLabYaml({ gatewayPort: gatewayPort!, metricsPort: metricsPort!, mediaPath: dir }));
    const labEnv = { HOMELAB_CONFIG: labConfig, HOMELAB_AUTH: 'keys', NATS_PORT: String(natsPort), HOMELAB_DATA_DIR: join(labDir, 'data'), HOMELAB_SECRETS_DIR: join(labDir, 'secrets') };
    const keyNames = async (env: Record<string, string>): Promise<string[]> => {
      const r = await runCli(['keys', 'list', '--json'], env);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { name: string }[]).map((k) => k.name);
    };

    // In the demo: a key.
    let demo = startCli(['demo'], demoEnv());
    await demo.waitFor(/The demo is ready\./, 120_000);
    let demoNats = readBlock(demo.output()).natsUrl;
    const made = await runCli(['keys', 'create', 'made-in-demo'], { NATS_URL: demoNats, HOMELAB_DEMO_DIR: demoDir });
    expect(made.code, made.stderr).toBe(0);
    expect(await keyNames({ NATS_URL: demoNats, HOMELAB_DEMO_DIR: demoDir })).toContain('made-in-demo');
    expect(await demo.stop(), demo.output().slice(-3000)).toBe(0);

    // The lab: none of it.
    const lab = startCli(['start'], labEnv);
    try {
      await lab.waitFor(/The lab is ready/, 120_000);
      expect(lab.output()).toContain(`lab data in ${join(labDir, 'data')}, NATS secrets in ${join(labDir, 'secrets')}`);
      const labCli = { NATS_PORT: String(natsPort), HOMELAB_SECRETS_DIR: join(labDir, 'secrets') };
      expect(await keyNames(labCli)).toEqual([]);
      const status = await runCli(['status', '--json'], labCli);
      const nodes = new Set((JSON.parse(status.stdout) as HealthSnapshot).targets.map((t) => t.node));
      expect(nodes.has('media-node') || nodes.has('ai-node')).toBe(false);
      // The demo's admin password is not the lab's: the lab refuses it.
      const demoPassword = /HOMELAB_NATS_PASS_ADMIN:\s*"([^"]+)"/.exec(readFileSync(join(demoDir, 'secrets', 'nats-passwords.conf'), 'utf8'))![1]!;
      expect((await runCli(['keys', 'list'], { NATS_PORT: String(natsPort), NATS_PASSWORD: demoPassword })).code).toBe(2);
      expect((await runCli(['keys', 'create', 'made-in-lab'], labCli)).code).toBe(0);
    } finally {
      expect(await lab.stop(), lab.output().slice(-3000)).toBe(0);
    }

    // The demo again: its key is there, the lab's is not.
    demo = startCli(['demo'], demoEnv());
    try {
      await demo.waitFor(/The demo is ready\./, 120_000);
      demoNats = readBlock(demo.output()).natsUrl;
      const names = await keyNames({ NATS_URL: demoNats, HOMELAB_DEMO_DIR: demoDir });
      expect(names).toContain('made-in-demo');
      expect(names).not.toContain('made-in-lab');
    } finally {
      expect(await demo.stop(), demo.output().slice(-3000)).toBe(0);
    }

    // Reset: the demo's folder is gone, the lab's untouched.
    const reset = await runCli(['demo', '--reset'], { HOMELAB_DEMO_DIR: demoDir });
    expect(reset.code).toBe(0);
    expect(existsSync(demoDir)).toBe(false);
    expect(existsSync(join(labDir, 'secrets', 'nats-passwords.conf'))).toBe(true);
    expect(existsSync(join(labDir, 'data', 'nats'))).toBe(true);
  });
});
