import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { hashesFileFor, writeNatsSecrets } from '@homelab/bus';
import { PROJECT_NATS_CONF, REPO_ROOT, findNatsServer, startTestStack, waitForService } from '@homelab/testing';
import { makeDeploySecrets } from './helpers/nats-cluster.ts';

/*
 * No systemd runs here, no Kubernetes cluster and no Docker engine: the unit files, manifests and
 * compose files are checked by the tools that can read them offline (systemd-analyze verify,
 * nats-server -t, a YAML parser and the rules below), and the k8s probe script runs for real.
 */

const DEPLOY = join(REPO_ROOT, 'deploy');
const services = readdirSync(join(REPO_ROOT, 'services')).filter((s) => existsSync(join(REPO_ROOT, 'services', s, 'src', 'main.ts'))).sort();
const natsConf = readFileSync(PROJECT_NATS_CONF, 'utf8');
const natsUserExists = (user: string) => new RegExp(`user: ${user}, password: \\$HOMELAB_NATS_PASS_${user.toUpperCase().replace(/-/g, '_')}`).test(natsConf);
const deployDoc = existsSync(join(REPO_ROOT, 'docs', 'deploy.md')) ? readFileSync(join(REPO_ROOT, 'docs', 'deploy.md'), 'utf8') : '';

function systemdAnalyze(): string {
  const r = spawnSync('systemd-analyze', ['--version']);
  if (r.status !== 0) throw new Error('systemd-analyze is not installed (Debian: the systemd package)');
  return 'systemd-analyze';
}

/** systemd-analyze verify; it exits 0 even for unknown keys or bad specifiers, so any message is a failure. */
function verify(args: string[], env: Record<string, string> = {}): string {
  const r = spawnSync(systemdAnalyze(), ['verify', ...args], { encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_COLOR: '0', ...env } });
  return `${r.status === 0 ? '' : `exit ${r.status}\n`}${r.stderr}${r.stdout}`.trim();
}

describe('deploy/systemd', () => {
  const unitDir = mkdtempSync(join(tmpdir(), 'homelab-units-'));
  copyFileSync(join(DEPLOY, 'systemd', 'homelab@.service'), join(unitDir, 'homelab@.service'));

  it.each(services)('homelab@%s.service passes systemd-analyze verify', (name) => {
    symlinkSync('homelab@.service', join(unitDir, `homelab@${name}.service`));
    expect(verify([join(unitDir, `homelab@${name}.service`)])).toBe('');
    // The instance name is the service folder and its NATS user.
    expect(existsSync(join(REPO_ROOT, 'services', name, 'src', 'main.ts'))).toBe(true);
    expect(natsUserExists(name), `nats.conf has no user ${name}`).toBe(true);
  });

  it('the template: the service chosen by instance name, drain on stop, restart on failure, secrets from root-only files', () => {
    const unit = readFileSync(join(DEPLOY, 'systemd', 'homelab@.service'), 'utf8');
    const keys = (key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]);
    expect(keys('ExecStart')).toHaveLength(1);
    expect(keys('KillSignal')).toEqual(['SIGTERM']);
    // Longer than the 30 s runService allows itself to drain.
    expect(Number(/^(\d+)/.exec(keys('TimeoutStopSec')[0]!)![1])).toBeGreaterThan(30);
    expect(keys('Restart')).toEqual(['on-failure']);
    expect(keys('EnvironmentFile')).toEqual(['-/etc/homelab/homelab.env', '-/etc/homelab/%i.env']);
    expect(keys('LoadCredential')).toEqual(['nats-passwords:/etc/homelab/nats-passwords.conf']);
    expect(keys('Environment')).toContain('NATS_PASSWORDS_FILE=%d/nats-passwords');
    expect(readFileSync(join(DEPLOY, 'systemd', 'homelab.sysusers.conf'), 'utf8')).toMatch(/^u homelab /m);
  });

  it.each(['router', 'router.2'])('ExecStart of homelab@%s runs the router as NATS user router (the part before a dot)', async (instance) => {
    const unit = readFileSync(join(DEPLOY, 'systemd', 'homelab@.service'), 'utf8');
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!;
    // What systemd hands to execve: specifiers resolved, $$ and %% unescaped; sh -c takes the quoted script.
    const line = exec.replace(/%i/g, instance).replace(/\$\$/g, '$').replace(/%%/g, '%');
    const m = /^\/bin\/sh -c '([^']*)' (\S+) (\S+)$/.exec(line);
    expect(m, line).not.toBeNull();
    await using stack = await startTestStack({ services: [] });
    const { NATS_USER: _user, ...env } = stack.nats.envFor('router');
    const proc = spawn('/bin/sh', ['-c', m![1]!, m![2]!, m![3]!], { cwd: REPO_ROOT, env: { PATH: process.env['PATH'] ?? '', HOMELAB_CONFIG: stack.configFile, ...env }, stdio: 'ignore' });
    try {
      await waitForService(stack.nats, 'router');
    } finally {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    expect(proc.exitCode).toBe(0);
  }, 30_000);

  it('the nats-server drop-in passes systemd-analyze verify on Debian\'s unit and runs a deploy/nats config', () => {
    const dir = mkdtempSync(join(tmpdir(), 'homelab-nats-unit-'));
    try {
      const debian = '/lib/systemd/system/nats-server.service';
      // Debian's unit (the nats-server package); its content as of Debian 12 where the package is absent.
      if (existsSync(debian)) copyFileSync(debian, join(dir, 'nats-server.service'));
      else writeFileSync(join(dir, 'nats-server.service'), '[Unit]\nDescription=NATS Server\nAfter=network.target ntp.service\n\n[Service]\nPrivateTmp=true\nType=simple\nExecStart=/usr/sbin/nats-server -c /etc/nats-server.conf\nExecReload=/bin/kill -s HUP $MAINPID\nExecStop=/bin/kill -s SIGINT $MAINPID\nUser=nats\nGroup=nats\n\n[Install]\nWantedBy=multi-user.target\n');
      mkdirSync(join(dir, 'nats-server.service.d'));
      copyFileSync(join(DEPLOY, 'systemd', 'nats-server.service.d', 'homelab.conf'), join(dir, 'nats-server.service.d', 'homelab.conf'));
      expect(verify(['nats-server.service'], { SYSTEMD_UNIT_PATH: `${dir}:` })).toBe('');
      const dropIn = readFileSync(join(DEPLOY, 'systemd', 'nats-server.service.d', 'homelab.conf'), 'utf8');
      expect(dropIn).toMatch(/^ExecStart=\/usr\/sbin\/nats-server -c \$\{HOMELAB_NATS_CONF\} -sd \/var\/lib\/nats$/m);
      // Every config the drop-in names is a deploy/nats file.
      for (const m of dropIn.matchAll(/HOMELAB_NATS_CONF=\/etc\/nats\/(\S+)/g)) {
        const file = m[1]!;
        expect(existsSync(join(DEPLOY, 'nats', file)) || existsSync(join(DEPLOY, 'nats', 'cluster', file)), file).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

interface K8sDoc { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; spec?: Record<string, unknown>; data?: Record<string, string> }
interface Container {
  name: string; image: string; command: string[]; env?: { name: string; value?: string }[];
  ports?: { name: string; containerPort: number }[]; resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  readinessProbe?: Probe; livenessProbe?: Probe; volumeMounts?: { name: string; mountPath: string }[];
}
interface Probe { httpGet?: { path: string; port: string | number }; exec?: { command: string[] } }
interface PodSpec { containers: Container[]; volumes?: { name: string; configMap?: { name: string }; secret?: { secretName: string }; emptyDir?: object; hostPath?: object }[]; terminationGracePeriodSeconds?: number }

function loadK8s(file: string): K8sDoc[] {
  const docs = parseAllDocuments(readFileSync(join(DEPLOY, 'k8s', file), 'utf8'));
  for (const d of docs) expect(d.errors, `${file}: ${d.errors.map((e) => e.message).join('; ')}`).toEqual([]);
  return docs.map((d) => d.toJS() as K8sDoc).filter(Boolean);
}

describe('deploy/k8s', () => {
  const kustomization = parse(readFileSync(join(DEPLOY, 'k8s', 'kustomization.yaml'), 'utf8')) as { resources: string[]; namespace: string };
  const manifests = [...kustomization.resources, 'optional/media.yaml'];
  const all = manifests.flatMap((f) => loadK8s(f).map((doc) => ({ file: f, doc })));
  const deployments = all.filter((d) => d.doc.kind === 'Deployment');
  const known: Record<string, string> = { Namespace: 'v1', ConfigMap: 'v1', Service: 'v1', Deployment: 'apps/v1', PodDisruptionBudget: 'policy/v1' };

  it('every resource is a known kind and version, in the homelab namespace', () => {
    for (const f of kustomization.resources) expect(existsSync(join(DEPLOY, 'k8s', f)), f).toBe(true);
    for (const { file, doc } of all) {
      expect(known[doc.kind], `${file}: ${doc.kind}`).toBe(doc.apiVersion);
      expect(doc.metadata.name, file).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      if (doc.kind !== 'Namespace') expect(doc.metadata.namespace, `${file}: ${doc.metadata.name}`).toBe('homelab');
    }
  });

  it('a Deployment per service (media optional), each with its command, NATS identity, requests and probes', () => {
    expect(deployments.map((d) => d.doc.metadata.name).sort()).toEqual(services);
    for (const { file, doc } of deployments) {
      const name = doc.metadata.name;
      const spec = doc.spec as { replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
      for (const [k, v] of Object.entries(spec.selector.matchLabels)) expect(spec.template.metadata.labels[k], `${file}: selector`).toBe(v);
      expect(spec.template.spec.terminationGracePeriodSeconds, file).toBeGreaterThan(30);
      const [c] = spec.template.spec.containers;
      expect(c!.command).toEqual(['node', `services/${name}/src/main.ts`]);
      const env = Object.fromEntries((c!.env ?? []).map((e) => [e.name, e.value]));
      expect(env['NATS_USER']).toBe(name);
      expect(natsUserExists(name), `nats.conf has no user ${name}`).toBe(true);
      expect(env['NATS_URL']).toBe('nats://nats.homelab.svc:4222');
      expect(c!.resources?.requests?.['cpu'], file).toBeTruthy();
      expect(c!.resources?.requests?.['memory'], file).toBeTruthy();
      // Probes: HTTP on a declared port where the service has one, else the $SRV.PING exec probe for this service.
      for (const probe of [c!.readinessProbe, c!.livenessProbe]) {
        expect(probe, `${file}: probes`).toBeDefined();
        if (probe!.httpGet) expect(c!.ports?.map((p) => p.name)).toContain(probe!.httpGet.port);
        else expect(probe!.exec?.command.slice(0, 3)).toEqual(['node', '/etc/homelab-probe/srv-ping.mjs', name]);
      }
      // Volumes: every mount has its volume; config and secrets come from the objects docs/deploy.md creates.
      const volumes = new Map((spec.template.spec.volumes ?? []).map((v) => [v.name, v]));
      for (const m of c!.volumeMounts ?? []) expect(volumes.has(m.name), `${file}: volume ${m.name}`).toBe(true);
      for (const v of volumes.values()) {
        if (v.configMap?.name === 'homelab-probe') continue;
        const ref = v.configMap?.name ?? v.secret?.secretName;
        if (ref) expect(deployDoc, `docs/deploy.md must show how to create ${ref}`).toContain(ref);
      }
      expect(env['HOMELAB_CONFIG']).toBe(`${c!.volumeMounts!.find((m) => m.name === 'config')!.mountPath}/lab.yaml`);
      expect(env['NATS_PASSWORDS_FILE']).toBe(`${c!.volumeMounts!.find((m) => m.name === 'secrets')!.mountPath}/nats-passwords.conf`);
    }
    const ingress = deployments.find((d) => d.doc.metadata.name === 'ingress')!.doc.spec as { template: { spec: PodSpec } };
    const probes = ingress.template.spec.containers[0]!;
    expect(probes.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(probes.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(probes.env?.find((e) => e.name === 'DRAIN_DELAY_MS')?.value).toBeTruthy();
  });

  it('Services select their Deployments; replicated services have a disruption budget', () => {
    for (const { doc } of all.filter((d) => d.doc.kind === 'Service' || d.doc.kind === 'PodDisruptionBudget')) {
      const selector = (doc.spec as { selector: Record<string, string> & { matchLabels?: Record<string, string> } }).selector;
      const labels = selector.matchLabels ?? selector;
      // The leafnode Service selects the pods of the NATS chart (release `nats`), not one of these.
      if (labels['app.kubernetes.io/component'] === 'nats') {
        expect(labels).toEqual({ 'app.kubernetes.io/name': 'nats', 'app.kubernetes.io/instance': 'nats', 'app.kubernetes.io/component': 'nats' });
        expect(deployDoc).toMatch(/helm install nats nats\/nats/);
        continue;
      }
      const target = deployments.find((d) => Object.entries(labels).every(([k, v]) => (d.doc.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels[k] === v));
      expect(target, `${doc.kind} ${doc.metadata.name} selects nothing`).toBeDefined();
    }
    for (const { doc } of deployments) {
      if ((doc.spec as { replicas: number }).replicas > 1) expect(all.some((d) => d.doc.kind === 'PodDisruptionBudget' && d.doc.metadata.name === doc.metadata.name), doc.metadata.name).toBe(true);
    }
  });

  it('the probe script answers for a live service, fails for a stopped one, and passes liveness while NATS is down', async () => {
    const probeMap = all.find((d) => d.doc.kind === 'ConfigMap' && d.doc.metadata.name === 'homelab-probe')!.doc;
    const dir = mkdtempSync(join(tmpdir(), 'homelab-probe-'));
    const script = join(dir, 'srv-ping.mjs');
    writeFileSync(script, probeMap.data!['srv-ping.mjs']!);
    await using stack = await startTestStack({ services: ['router'] });
    const probe = (name: string, mode: string, env: Record<string, string>) =>
      spawnSync(process.execPath, [script, name, mode], { cwd: REPO_ROOT, encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', ...env } });
    try {
      // As in the pod: the service's own user, its passwords file.
      const passwordsFile = join(dir, 'nats-passwords.conf');
      writeFileSync(passwordsFile, Object.entries(stack.nats.passwords).map(([u, p]) => `HOMELAB_NATS_PASS_${u.toUpperCase().replace(/-/g, '_')}: "${p}"`).join('\n'));
      const env = { NATS_URL: stack.nats.url, NATS_USER: 'router', NATS_PASSWORDS_FILE: passwordsFile };
      const up = probe('router', 'ready', env);
      expect(up.status, up.stdout + up.stderr).toBe(0);
      expect(probe('router', 'live', env).status).toBe(0);
      await stack.services[0]!.stop();
      const gone = probe('router', 'ready', env);
      expect(gone.status, gone.stdout).toBe(1);
      expect(gone.stdout).toMatch(/router does not answer/);
      await stack.nats.stop();
      expect(probe('router', 'ready', env).status).toBe(1);
      const live = probe('router', 'live', env);
      expect(live.status, live.stdout).toBe(0);
      expect(live.stdout).toMatch(/NATS unreachable/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('nats-values.yaml: the config the chart makes of it, with the project\'s nats.conf included, is valid for nats-server', () => {
    const values = parse(readFileSync(join(DEPLOY, 'k8s', 'nats-values.yaml'), 'utf8')) as {
      config: { cluster: { enabled: boolean; replicas: number }; jetstream: { enabled: boolean; merge: Record<string, unknown> }; leafnodes: { enabled: boolean; merge: Record<string, unknown> }; merge: Record<string, string> };
      podTemplate: { patch: { value: { name: string; secret: { secretName: string; items: { key: string; path: string }[] } } }[] };
      container: { patch: { value: { name: string; mountPath: string } }[] };
    };
    expect(values.config.cluster).toMatchObject({ enabled: true, replicas: 3 });
    expect(values.config.jetstream.enabled).toBe(true);
    expect(values.config.jetstream.merge['domain']).toBe('hub');
    expect(values.config.leafnodes.enabled).toBe(true);
    expect(deployDoc).toContain('homelab-nats-server');

    // The files of the Secret, where the pod template mounts them (the chart's config is /etc/nats-config/nats.conf).
    const root = mkdtempSync(join(tmpdir(), 'homelab-chart-'));
    try {
      const volume = values.podTemplate.patch[0]!.value;
      const mount = values.container.patch[0]!.value;
      expect(mount.name).toBe(volume.name);
      const sources: Record<string, () => string> = {
        'nats.conf': () => natsConf,
        'nats-leaf-users.conf': () => makeDeploySecrets(join(root, 'made'), ['--hub', 'nats']) ['hub/nats-leaf-users.conf']!,
      };
      const passwords = join(root, 'passwords.conf');
      writeNatsSecrets(passwords, { cost: 4 });
      sources['nats-hashes.conf'] = () => readFileSync(hashesFileFor(passwords), 'utf8');
      for (const item of volume.secret.items) {
        const target = join(root, mount.mountPath, item.path);
        mkdirSync(dirname(target), { recursive: true });
        writeFileSync(target, sources[item.key]!());
      }
      // What the chart renders for the keys this file sets: JSON, `<< x >>` unquoted, `*$include` keys as include lines, sorted first.
      const raw = (v: unknown): string => JSON.stringify(v, null, 2).replace(/"<<\s+(.*?)\s+>>"/g, '$1');
      const includes = Object.entries(values.config.merge).filter(([k]) => k.endsWith('$include')).sort(([a], [b]) => a.localeCompare(b)).map(([, v]) => `include ${v};`);
      const rendered = `${includes.join('\n')}\n${raw({
        server_name: 'nats-0', port: 4222, http_port: 8222,
        jetstream: { store_dir: '/data', max_file_store: '<< 10Gi >>', max_memory_store: '<< 256Mi >>', ...values.config.jetstream.merge },
        leafnodes: { port: 7422, no_advertise: true, ...values.config.leafnodes.merge },
      }).slice(1, -1)}`;
      const configDir = join(root, 'etc', 'nats-config');
      mkdirSync(configDir, { recursive: true });
      writeFileSync(join(configDir, 'nats.conf'), rendered);
      // The mount path is absolute in the pod: lay /etc/… out under root and point the includes there.
      for (const inc of includes) expect(posix.isAbsolute(inc.slice(8, -1))).toBe(false);
      expect(resolve('/etc/nats-config', values.config.merge['00$include']!)).toBe(posix.join(mount.mountPath, 'nats.conf'));
      const bin = findNatsServer();
      expect(bin).toBeDefined();
      const r = spawnSync(bin!, ['-c', join(configDir, 'nats.conf'), '-t'], { encoding: 'utf8' });
      expect(r.status, `${r.stderr}\n${rendered}`).toBe(0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

interface ComposeService { image?: string; command?: string[]; environment?: Record<string, string>; volumes?: string[]; secrets?: string[]; ports?: string[] }
interface ComposeFile { services: Record<string, ComposeService>; secrets?: Record<string, { file: string }> }

describe('deploy/compose', () => {
  const nodes: Record<string, string[]> = {
    'ai-gateway': ['ingress', 'router', 'worker-cloud', 'health', 'telemetry'],
    'ai-node': ['worker-vllm', 'worker-ollama', 'worker-comfyui'],
    'media-node': ['media'],
  };
  const load = (node: string) => parse(readFileSync(join(DEPLOY, 'compose', node, 'compose.yml'), 'utf8'), { merge: true }) as ComposeFile;

  it('every service runs on the node it belongs to, once across the nodes', () => {
    const placed = Object.keys(nodes).flatMap((node) => Object.values(load(node).services).filter((s) => s.command?.[0] === 'node').map((s) => s.command![1]!));
    expect([...new Set(placed.map((c) => c.split('/')[1]))].sort()).toEqual(services);
    for (const [node, expected] of Object.entries(nodes)) {
      const here = [...new Set(Object.values(load(node).services).filter((s) => s.command?.[0] === 'node').map((s) => s.command![1]!.split('/')[1]))].sort();
      expect(here, node).toEqual([...expected].sort());
    }
  });

  it.each(Object.keys(nodes))('%s: services connect to the node\'s NATS as themselves; mounted files exist; NATS runs this node\'s deploy config', (node) => {
    const compose = load(node);
    const base = join(DEPLOY, 'compose', node);
    for (const [key, svc] of Object.entries(compose.services)) {
      for (const v of svc.volumes ?? []) {
        const src = v.split(':')[0]!;
        // Paths into .secrets/ are made on the machine (homelab setup, make-secrets.sh); the rest is in the repository.
        if (src.startsWith('.') && !src.includes('.secrets/') && !src.endsWith('.env')) expect(existsSync(resolve(base, src)), `${node}/${key}: ${src}`).toBe(true);
      }
      if (svc.command?.[0] !== 'node') continue;
      const name = svc.command[1]!.split('/')[1]!;
      expect(svc.command).toEqual(['node', `services/${name}/src/main.ts`]);
      expect(svc.environment).toMatchObject({ NATS_URL: 'nats://nats:4222', NATS_USER: name, HOMELAB_CONFIG: '/etc/homelab/lab.yaml', NATS_PASSWORDS_FILE: '/run/secrets/nats_passwords' });
      expect(natsUserExists(name)).toBe(true);
      expect(svc.secrets).toEqual(['nats_passwords']);
    }
    const nats = compose.services['nats']!;
    const conf = nats.command![1]!;
    const mounted = Object.fromEntries((nats.volumes ?? []).map((v) => [v.split(':')[1], v.split(':')[0]]));
    expect(mounted[conf], `${node}: ${conf} is not mounted`).toBeDefined();
    expect(resolve(base, mounted[conf]!)).toBe(join(DEPLOY, 'nats', conf.split('/').pop()!));
    expect(resolve(base, mounted['/etc/nats/nats.conf']!)).toBe(PROJECT_NATS_CONF);
    // The server gets the bcrypt hashes only; the services the clear passwords (a compose secret).
    expect(mounted['/etc/nats/.secrets/nats-hashes.conf']).toBe('../../../.secrets/nats-hashes.conf');
    expect(mounted['/etc/nats/.secrets/nats-passwords.conf']).toBeUndefined();
    expect(compose.secrets?.['nats_passwords']?.file).toBe('../../../.secrets/nats-passwords.conf');
  });

  it('ai-gateway: two ingress replicas behind the Caddyfile the rolling-restart test runs; media-node: one copy of its streams', () => {
    const gw = load('ai-gateway');
    expect(Object.values(gw.services).filter((s) => s.command?.[1] === 'services/ingress/src/main.ts')).toHaveLength(2);
    const caddyfile = readFileSync(join(DEPLOY, 'compose', 'ai-gateway', 'Caddyfile'), 'utf8');
    for (const name of Object.keys(gw.services).filter((k) => k.startsWith('ingress-'))) expect(caddyfile).toContain(`${name}:8080`);
    expect(gw.services['edge']!.volumes).toContain('./Caddyfile:/etc/caddy/Caddyfile:ro');
    expect(load('media-node').services['media']!.environment!['NATS_REPLICAS']).toBe('1');
  });
});
