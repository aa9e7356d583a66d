import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { EventPublisher, ReplyMux, inboxPrefixOf, ensureStreams, Streams, writeNatsSecrets } from '@homelab/bus';
import { PROJECT_NATS_CONF, REPO_ROOT, findNatsServer } from '@homelab/testing';
import { DEPLOY_NATS, connectNode, makeDeploySecrets, startDeployedNats, waitForLeafLink } from './helpers/nats-cluster.ts';
import { startSpreadStack } from './helpers/deploy-stack.ts';
import { waitFor } from './telemetry-kit.ts';

const mediaStreams = Streams.filter((s) => s.name === 'MEDIA');
const serviceError = (source: string) => ({ source, kind: 'sonarr' as const, reason: 'timeout' as const, message: 'timeout after 5000 ms', at: new Date().toISOString(), since: new Date().toISOString() });

describe('deploy/nats files', () => {
  it.each([
    ['hub.conf', [], ['nats-leaf-users.conf']],
    ['cluster/hub-1.conf', ['cluster/hub-cluster.conf'], ['nats-leaf-users.conf', 'nats-cluster.conf']],
    ['cluster/hub-2.conf', ['cluster/hub-cluster.conf'], ['nats-leaf-users.conf', 'nats-cluster.conf']],
    ['cluster/hub-3.conf', ['cluster/hub-cluster.conf'], ['nats-leaf-users.conf', 'nats-cluster.conf']],
    ['leaf-ai-node.conf', [], ['nats-leaf-remote.conf']],
    ['leaf-media-node.conf', [], ['nats-leaf-remote.conf']],
  ] as const)('%s is valid for nats-server 2.9 (-t), installed as docs/deploy.md lays it out', (conf, others, secretFiles) => {
    const bin = findNatsServer();
    expect(bin, 'nats-server is not installed (apt-get install nats-server)').toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), 'homelab-nats-t-'));
    try {
      // /etc/nats/ on a node: the project's nats.conf, the deploy files, .secrets/ from `homelab setup` and make-secrets.sh.
      mkdirSync(join(dir, '.secrets'));
      copyFileSync(PROJECT_NATS_CONF, join(dir, 'nats.conf'));
      for (const f of [conf, ...others]) copyFileSync(join(DEPLOY_NATS, f), join(dir, f.split('/').pop()!));
      writeNatsSecrets(join(dir, '.secrets', 'nats-passwords.conf'), { cost: 4 });
      const secrets = makeDeploySecrets(join(dir, 'made'), ['--hub', 'hub-1,hub-2,hub-3', '--cluster']);
      const node = conf.startsWith('leaf-') ? conf.slice(5, -5) : 'hub';
      for (const s of secretFiles) writeFileSync(join(dir, '.secrets', s), secrets[`${node}/${s}`]!);
      const r = spawnSync(bin!, ['-c', join(dir, conf.split('/').pop()!), '-t'], { encoding: 'utf8' });
      expect(r.status, r.stderr + r.stdout).toBe(0);
      // Accounts, users and permissions come from the project's nats.conf only: one source of truth.
      const text = readFileSync(join(DEPLOY_NATS, conf), 'utf8');
      expect(text).toMatch(/^include \.\/nats\.conf$/m);
      for (const own of [text, ...others.map((o) => readFileSync(join(DEPLOY_NATS, o), 'utf8'))]) {
        expect(own).not.toMatch(/^(accounts|authorization|no_auth_user|system_account)\s*[:{]/m);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('make-secrets.sh writes each machine its passwords, and will not silently replace them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'homelab-secrets-'));
    try {
      const made = makeDeploySecrets(dir, ['--hub', '192.168.1.20']);
      const aiPass = /HOMELAB_NATS_LEAF_PASS_AI_NODE: "([^"]+)"/.exec(made['hub/nats-leaf-users.conf']!)![1]!;
      expect(aiPass).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(made['ai-node/nats-leaf-remote.conf']).toContain(`HOMELAB_NATS_HUB_URLS: ["nats-leaf://leaf-ai-node:${aiPass}@192.168.1.20:7422"]`);
      expect(made['ai-node/nats-leaf-remote.conf']).toContain(`HOMELAB_NATS_HUB_SYS_URLS: ["nats-leaf://leaf-ai-node-sys:${aiPass}@192.168.1.20:7422"]`);
      expect(made['media-node/nats-leaf-remote.conf']).not.toContain(aiPass);
      expect(spawnSync('bash', [join(DEPLOY_NATS, 'make-secrets.sh'), '-o', dir, '--hub', 'x']).status).toBe(1);
      const cluster = makeDeploySecrets(join(dir, 'c'), ['--hub', 'hub-1,hub-2,hub-3', '--cluster']);
      expect(cluster['hub/nats-cluster.conf']).toMatch(/HOMELAB_NATS_ROUTES: \["nats-route:\/\/route:[^@]+@hub-1:6222", "nats-route:\/\/route:[^@]+@hub-2:6222", "nats-route:\/\/route:[^@]+@hub-3:6222"\]/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('replicas from the config', () => {
  it('more replicas than servers: a clear error naming the setting, on one server and on the three-server hub', async () => {
    await using single = await startDeployedNats({ hubServers: 1 });
    const nc1 = await connectNode(single.hubs[0]!, single.passwords, 'telemetry');
    const err1 = await ensureStreams(nc1, { replicas: 3, streams: mediaStreams }).catch((e: Error) => e);
    expect(err1).toBeInstanceOf(Error);
    expect((err1 as Error).message).toMatch(/^stream MEDIA: nats\.replicas is 3, but the NATS servers this service reaches cannot hold 3 copies \(.+\)\. Set nats\.replicas \(or NATS_REPLICAS for this service\) to at most the number of JetStream servers/);
    await nc1.close();

    await using cluster = await startDeployedNats({ hubServers: 3 });
    const nc3 = await connectNode(cluster.hubs[0]!, cluster.passwords, 'telemetry');
    const err5 = await ensureStreams(nc3, { replicas: 5, streams: mediaStreams }).catch((e: Error) => e);
    expect((err5 as Error).message).toMatch(/^stream MEDIA: nats\.replicas is 5, but the NATS servers this service reaches cannot hold 5 copies/);
    // Growing: a stream made at R1 (one server, before the cluster) is raised to the configured three.
    await ensureStreams(nc3, { replicas: 1, streams: mediaStreams });
    await ensureStreams(nc3, { replicas: 3, streams: mediaStreams });
    expect((await (await jetstreamManager(nc3)).streams.info('MEDIA')).config.num_replicas).toBe(3);
    await nc3.close();
  }, 60_000);
});

describe('leaf nodes (deploy/nats/leaf-*.conf)', () => {
  it('media-node: events stored on the leaf during a cut reach the hub\'s sourced MEDIA after it, once and in order', async () => {
    await using nats = await startDeployedNats({ hubServers: 1, leaves: ['media-node'] });
    const hub = nats.hubs[0]!;
    const leaf = nats.leaves['media-node']!;

    // The media service side: its stream MEDIA in the leaf's own domain (NATS_REPLICAS=1 on that node).
    const media = await connectNode(leaf, nats.passwords, 'media');
    await ensureStreams(media, { replicas: 1, streams: mediaStreams });
    const events = new EventPublisher(media, new ReplyMux(media, inboxPrefixOf(media)));

    // The hub side: a plain MEDIA made by telemetry first (the wrong start order), then turned into the sourced
    // aggregate by deploy/nats/apply-stream.mjs; ensureStreams leaves the aggregate alone afterwards.
    const telemetry = await connectNode(hub, nats.passwords, 'telemetry');
    await ensureStreams(telemetry, { replicas: 1, streams: mediaStreams });
    const apply = spawnSync(process.execPath, [join(DEPLOY_NATS, 'apply-stream.mjs'), join(DEPLOY_NATS, 'streams', 'MEDIA.hub.json')], {
      encoding: 'utf8', cwd: REPO_ROOT, env: { PATH: process.env['PATH'] ?? '', ...hub.envFor('telemetry') },
    });
    expect(apply.status, apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(/updated stream MEDIA/);
    await ensureStreams(telemetry, { replicas: 1, streams: mediaStreams });
    const jsm = await jetstreamManager(telemetry);
    const hubMedia = async () => (await jsm.streams.info('MEDIA'));
    expect((await hubMedia()).config.subjects ?? []).toEqual([]);
    expect((await hubMedia()).config.sources?.[0]?.external?.api).toBe('$JS.media.API');

    const publish = async (from: number, to: number) => { for (let i = from; i < to; i++) await events.publish('mediaServiceError', serviceError(`e${i}`), { msgId: `leaf-${i}` }); };
    await publish(0, 20);
    await waitFor(async () => (await hubMedia()).state.messages === 20, 10_000, '20 events on the hub');

    // The cut: the link between the leaf and the hub drops (both servers keep running).
    const scripts = await connectNode(hub, nats.passwords, 'scripts');
    nats.leafLinks[0]!.cut();
    await waitFor(() => /Leafnode connection closed/i.test(leaf.log()), 5000, 'the leaf to see the cut');
    const logMark = leaf.log().length;
    // Meanwhile the media node keeps storing its events, and the hub says at once that media.status has no answer.
    await publish(20, 50);
    expect((await hubMedia()).state.messages).toBe(20);
    const asked = await scripts.request('media.status', undefined, { timeout: 2000 }).then(() => 'answered', (e: Error) => e.message);
    expect(asked).toMatch(/no responders|503/i);

    nats.leafLinks[0]!.restore();
    await waitForLeafLink(leaf, logMark);
    await waitFor(async () => (await hubMedia()).state.messages === 50, 15_000, 'the 30 events of the cut on the hub');
    const consumer = await (await import('@nats-io/jetstream')).jetstream(scripts).consumers.get('MEDIA');
    const seen: string[] = [];
    const it = await consumer.fetch({ max_messages: 100, expires: 2000 });
    for await (const m of it) seen.push((m.json() as { source: string }).source);
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => `e${i}`));

    await media.close();
    await telemetry.close();
    await scripts.close();
  }, 60_000);

  it('ai-node: a worker on the leaf serves the hub\'s router, stores its events in the hub\'s stream, and serves again after a cut', async () => {
    await using nats = await startDeployedNats({ hubServers: 1, leaves: ['ai-node'] });
    const hub = nats.hubs[0]!;
    const leaf = nats.leaves['ai-node']!;
    await using stack = await startSpreadStack({ tokens: 4 });
    // The worker on ai-node reaches the hub's JetStream through the leaf (extended domain): its start
    // (ensureStreams on INFERENCE) and its events work as if it were on the hub.
    await stack.start('worker-vllm', leaf);
    await stack.start('router', hub);
    const scripts = await connectNode(hub, nats.passwords, 'scripts');
    const ask = async (id: string) => {
      const reply = await scripts.request('inference.chat.completions', JSON.stringify({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', messages: [{ role: 'user', content: 'hi' }] }), { timeout: 10_000, headers: (await import('@nats-io/transport-node')).headers() });
      return { body: reply.string(), error: reply.headers?.get('Nats-Service-Error-Code'), id };
    };
    await waitFor(async () => !(await ask('warmup')).error, 15_000, 'the router to see the leaf\'s worker');
    const first = await ask('r1');
    expect(first.error).toBeFalsy();
    expect(first.body).toContain('"chat.completion"');
    const jsm = await jetstreamManager(scripts);
    await waitFor(async () => (await jsm.streams.info('INFERENCE')).state.messages >= 2, 10_000, 'the worker\'s events in the hub\'s INFERENCE');

    nats.leafLinks[0]!.cut();
    await waitFor(() => /Leafnode connection closed/i.test(leaf.log()), 5000, 'the leaf to see the cut');
    const logMark = leaf.log().length;
    // No worker reachable: the router answers with an error at once rather than hanging.
    const during = await ask('r2');
    expect(during.error).toMatch(/^5\d\d$/);
    nats.leafLinks[0]!.restore();
    await waitForLeafLink(leaf, logMark);
    await waitFor(async () => !(await ask('after')).error, 15_000, 'requests served again after the cut');
    await scripts.close();
  }, 60_000);
});
