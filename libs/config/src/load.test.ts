import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig, redactConfig } from './index.ts';

describe('loadConfig', () => {
  it('defaults to the seed lab: IP scheme, ports, storage paths', () => {
    const cfg = loadConfig({ env: {} });
    const addr = Object.fromEntries(Object.entries(cfg.nodes).map(([n, node]) => [n, node.address]));
    expect(addr).toMatchObject({ router: '192.168.1.1', 'ai-node': '192.168.1.7', proxmox: '192.168.1.8', 'ai-gateway': '192.168.1.20', 'rocky-lab': '192.168.1.21', 'media-node': '192.168.1.9' });
    const ports = Object.fromEntries(cfg.services.map((s) => [`${s.node}/${s.name}`, s.port]));
    expect(ports).toMatchObject({
      'ai-node/vllm': 8000, 'ai-node/ollama': 11434, 'media-node/jellyfin': 8096, 'media-node/sonarr': 8989, 'media-node/radarr': 7878,
      'media-node/prowlarr': 9696, 'media-node/qbittorrent': 8081, 'media-node/immich': 2283, 'ai-gateway/gateway': 8080, 'ai-gateway/https': 443, 'ai-gateway/http': 80,
    });
    expect(cfg.media.paths).toEqual(['/mnt/media', '/mnt/downloads', '/mnt/photos']);
    expect(cfg.backends.vllm?.url).toBe('http://192.168.1.7:8000');
    expect(cfg.backends.ollama?.url).toBe('http://192.168.1.7:11434');
    expect(cfg.gateway.port).toBe(8080);
    // No keys in the environment: cloud backends are not configured, and the config says so.
    expect(cfg.backends.openai).toBeUndefined();
    expect(cfg.notConfigured).toContainEqual({ area: 'inference', message: 'openai: no API key (OPENAI_API_KEY)' });
  });

  it('lets the environment override addresses and secrets', () => {
    const cfg = loadConfig({
      env: {
        NATS_URL: 'nats://127.0.0.1:5222,nats://127.0.0.1:5223', VLLM_URL: 'http://127.0.0.1:9000/', OLLAMA_URL: 'http://127.0.0.1:9001',
        OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: 'http://127.0.0.1:9002/v1', ANTHROPIC_API_KEY: 'sk-ant', ANTHROPIC_BASE_URL: 'http://127.0.0.1:9003',
        SONARR_URL: 'http://127.0.0.1:9004', SONARR_API_KEY: 'abc', QBITTORRENT_USERNAME: 'u', QBITTORRENT_PASSWORD: 'p', MEDIA_PATHS: '/a, /b', PORT: '9999',
      },
    });
    expect(cfg.nats.url).toBe('nats://127.0.0.1:5222,nats://127.0.0.1:5223');
    expect(cfg.backends.vllm?.url).toBe('http://127.0.0.1:9000');
    expect(cfg.backends.ollama?.url).toBe('http://127.0.0.1:9001');
    expect(cfg.backends.openai).toMatchObject({ apiKey: 'sk-test', baseURL: 'http://127.0.0.1:9002/v1' });
    expect(cfg.backends.anthropic).toMatchObject({ apiKey: 'sk-ant', baseURL: 'http://127.0.0.1:9003' });
    const sonarr = cfg.services.find((s) => s.kind === 'sonarr');
    expect(sonarr).toMatchObject({ url: 'http://127.0.0.1:9004', apiKey: 'abc', address: '127.0.0.1' });
    expect(cfg.services.find((s) => s.kind === 'qbittorrent')).toMatchObject({ username: 'u', password: 'p' });
    expect(cfg.media.paths).toEqual(['/a', '/b']);
    expect(cfg.gateway.port).toBe(9999);
    expect(Object.isFrozen(cfg.backends)).toBe(true);
  });

  it('an address override that is no http(s) URL is refused, naming the variable, not its value', () => {
    for (const value of ['foo', '192.168.1.7:8000', 'localhost:8000', 'ftp://host/', 'http://']) {
      expect(() => parseConfig('nodes: {}\n', 'lab.yaml', { VLLM_URL: value }), value)
        .toThrowError(new ConfigError('lab.yaml', 'VLLM_URL (environment)', 'not an http(s) URL (like http://192.168.1.7:8000)'));
    }
    expect(() => loadConfig({ env: { SONARR_URL: 'http//user:secret@host' } })).toThrowError(/^[^:]+lab\.yaml: SONARR_URL \(environment\): not an http\(s\) URL/);
    expect(() => loadConfig({ env: { SONARR_URL: 'http//user:secret@host' } })).not.toThrowError(/secret/);
  });

  it('an empty address override leaves the backend unconfigured, and says so', () => {
    const cfg = loadConfig({ env: { VLLM_URL: '' } });
    expect(cfg.backends.vllm).toBeUndefined();
    expect(cfg.notConfigured).toContainEqual({ area: 'inference', message: 'vllm: ai-node/vllm has no address' });
  });

  it('rejects unknown keys, naming the file and the field', () => {
    const yaml = 'nodes:\n  ai-node:\n    address: 127.0.0.1\n    services:\n      vllm: { kind: vllm, port: 8000, prot: 1 }\n';
    expect(() => parseConfig(yaml, 'lab.yaml')).toThrowError(new ConfigError('lab.yaml', 'nodes.ai-node.services.vllm.prot', 'unknown key'));
    expect(() => parseConfig('nodes: {}\ntypo: 1\n', 'lab.yaml')).toThrowError(/lab\.yaml: typo: unknown key/);
  });

  it('rejects wrong types and bad YAML with the file and field', () => {
    expect(() => parseConfig('nodes:\n  a:\n    services:\n      x: { kind: tcp, port: "eighty" }\n', 'my.yaml')).toThrowError(/^my\.yaml: nodes\.a\.services\.x\.port: /);
    expect(() => parseConfig('nodes: [\n', 'bad.yaml')).toThrowError(/^bad\.yaml: invalid YAML/);
    expect(() => parseConfig('gateway: {}\n', 'x.yaml')).toThrowError(/x\.yaml: nodes: /);
    expect(() => loadConfig({ file: '/nonexistent/lab.yaml', env: {} })).toThrowError(/\/nonexistent\/lab\.yaml: cannot read: ENOENT/);
    expect(() => parseConfig('nodes: {}\ninference:\n  vllm: { service: ai-node/vllm }\n', 'y.yaml')).toThrowError(/y\.yaml: inference\.vllm\.service: no service/);
  });

  it('redacts secrets for logging', () => {
    const cfg = loadConfig({ env: { OPENAI_API_KEY: 'sk-very-secret', SONARR_API_KEY: 'sonarr-secret' } });
    const text = JSON.stringify(redactConfig(cfg));
    expect(text).not.toContain('sk-very-secret');
    expect(text).not.toContain('sonarr-secret');
  });
});
