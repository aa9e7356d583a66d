import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '@homelab/config';
import { buildInventory, discoveryTarget } from './inventory.ts';

// Only builds probe specs from the default config: nothing here sends a packet.
describe('inventory from the seed lab (config/lab.yaml)', () => {
  const config = loadConfig({ env: {} });
  const targets = buildInventory(config);
  const byKey = Object.fromEntries(targets.map((t) => [t.key, t]));

  it('lists every node and service of the seed, each with the probe that fits it', () => {
    const summary = Object.fromEntries(targets.map((t) => [t.key, `${t.probe} ${t.display ?? `(${t.reason})`}`]));
    expect(summary).toEqual({
      'router.host': 'tcp 192.168.1.1:80',
      'ai-node.vllm': 'http http://192.168.1.7:8000/health',
      'ai-node.ollama': 'ollama http://192.168.1.7:11434/api/version',
      'ai-node.comfyui': 'comfyui http://192.168.1.7:8188/system_stats',
      'proxmox.proxmox': 'tls tls://192.168.1.8:8006',
      'ai-gateway.http': 'tcp 192.168.1.20:80',
      'ai-gateway.https': 'http https://192.168.1.20/',
      'ai-gateway.gateway': 'http http://192.168.1.20:8080/',
      'rocky-lab.ssh': 'tcp 192.168.1.21:22',
      'lab-vm.host': 'none (no address)',
      'media-node.jellyfin': 'http http://192.168.1.9:8096/health',
      'media-node.sonarr': 'http http://192.168.1.9:8989/ping',
      'media-node.radarr': 'http http://192.168.1.9:7878/ping',
      'media-node.prowlarr': 'http http://192.168.1.9:9696/ping',
      'media-node.qbittorrent': 'qbittorrent http://192.168.1.9:8081/api/v2/app/version',
      'media-node.immich': 'http http://192.168.1.9:2283/api/server/ping',
    });
  });

  it('uses the built-in checks of each kind', () => {
    expect(byKey['media-node.jellyfin']!.spec).toMatchObject({ expectStatus: [200], body: [{ contains: 'Healthy' }] });
    expect(byKey['media-node.sonarr']!.spec).toMatchObject({ body: [{ json: 'status', equals: 'OK' }] });
    expect(byKey['media-node.immich']!.spec).toMatchObject({ body: [{ json: 'res', equals: 'pong' }] });
    expect(byKey['rocky-lab.ssh']!.spec).toMatchObject({ type: 'tcp', expectBanner: 'SSH-' });
    expect(byKey['ai-gateway.https']!.spec).toMatchObject({ insecureTls: true, expectStatus: ['2xx', '3xx', '4xx'] });
    expect(byKey['proxmox.proxmox']!.spec).toMatchObject({ type: 'tls', insecureTls: true });
    expect(byKey['ai-node.vllm']).toMatchObject({ intervalMs: 30_000, timeoutMs: 5000, damping: { failuresBeforeDown: 3, successesBeforeUp: 2 } });
  });

  it('uses the Proxmox API with a token from PROXMOX_API_TOKEN, and keeps it out of what it shows', () => {
    const token = 'root@pam!health=0b1c2d3e-aaaa-bbbb-cccc-000011112222';
    const t = buildInventory(loadConfig({ env: { PROXMOX_API_TOKEN: token } })).find((x) => x.key === 'proxmox.proxmox')!;
    expect(t.spec).toMatchObject({ type: 'http', url: 'https://192.168.1.8:8006/api2/json/version', headers: { authorization: `PVEAPIToken=${token}` }, degradedStatus: [401, 403] });
    expect(t.display).toBe('https://192.168.1.8:8006/api2/json/version');
    expect(t.secrets).toContain(token);
  });
});

describe('per-target settings', () => {
  const yaml = `
nodes:
  box:
    address: 127.0.0.1
    services:
      web: { kind: http, port: 8080 }
      api: { kind: sonarr, port: 8989, apiKey: sonarr-secret-key }
      db: { kind: tcp, port: 5432 }
  nas:
    address: 10.0.0.5
  bare: {}
health:
  intervalMs: 1000
  targets:
    box/web: { path: /status, expectStatus: [200], body: [{ json: ok, equals: true }], headers: { x-token: header-secret }, timeoutMs: 300, failuresBeforeDown: 5 }
    box/api: { probe: tcp }
    box/db: { enabled: false }
    nas/host: { probe: http, port: 5000, path: /login }
`;
  const config = parseConfig(yaml, 'lab.yaml', {});
  const byKey = Object.fromEntries(buildInventory(config).map((t) => [t.key, t]));

  it('override the kind\'s probe, its timing and its damping', () => {
    expect(byKey['box.web']).toMatchObject({
      intervalMs: 1000, timeoutMs: 300, damping: { failuresBeforeDown: 5, successesBeforeUp: 2 }, secrets: ['header-secret'],
      spec: { type: 'http', url: 'http://127.0.0.1:8080/status', expectStatus: [200], body: [{ json: 'ok', equals: true }], headers: { 'x-token': 'header-secret' } },
    });
    expect(byKey['box.api']).toMatchObject({ probe: 'tcp', spec: { type: 'tcp', host: '127.0.0.1', port: 8989 }, secrets: ['sonarr-secret-key'] });
    expect(byKey['box.db']).toMatchObject({ probe: 'none', spec: null, reason: 'disabled in config' });
    expect(byKey['nas.host']).toMatchObject({ spec: { type: 'http', url: 'http://10.0.0.5:5000/login' } });
    expect(byKey['bare.host']).toMatchObject({ spec: null, reason: 'no address' });
    expect(byKey['box.host']).toBeUndefined();
  });

  it('rejects a reference to a node or service that does not exist, naming the field', () => {
    expect(() => parseConfig(`${yaml}    box/nope: { timeoutMs: 1 }\n`, 'lab.yaml', {})).toThrowError(new ConfigError('lab.yaml', 'health.targets.box/nope', "node 'box' has no service 'nope' (use 'box/host' for the node itself)"));
    expect(() => parseConfig('nodes: {}\nhealth: { targets: { ghost/host: {} } }\n', 'lab.yaml', {})).toThrowError(/health\.targets\.ghost\/host: no node 'ghost'/);
    expect(() => parseConfig('nodes: { gateway: {} }\n', 'lab.yaml', {})).toThrowError(/health\.discovery\.node: 'gateway' is a node of the lab/);
    expect(() => parseConfig('nodes: {}\nhealth: { targets: { box/web: { tiemout: 1 } } }\n', 'lab.yaml', {})).toThrowError(/health\.targets\.box\/web\.tiemout: unknown key/);
  });

  it('takes alert secrets from the environment', () => {
    const c = parseConfig('nodes: {}\nhealth: { alerts: { ntfy: { topic: lab-alerts } } }\n', 'lab.yaml', { NTFY_TOKEN: 'tk_secret', HEALTH_WEBHOOK_URL: 'http://127.0.0.1:9/hook' });
    expect(c.health.alerts).toMatchObject({ ntfy: { url: 'https://ntfy.sh', topic: 'lab-alerts', token: 'tk_secret' }, webhook: { url: 'http://127.0.0.1:9/hook' } });
    expect(() => parseConfig('nodes: {}\nhealth: { alerts: { webhook: { url: "ftp://x" } } }\n', 'lab.yaml', {})).toThrowError(/health\.alerts\.webhook\.url: not an http\(s\) URL/);
  });

  it('names discovered services under the discovery node', () => {
    expect(discoveryTarget('worker-vllm', config.health)).toMatchObject({ key: 'gateway.worker-vllm', node: 'gateway', service: 'worker-vllm', probe: 'srv', damping: { failuresBeforeDown: 2, successesBeforeUp: 1 } });
  });
});
