import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '@homelab/testing';

// No Docker engine runs here: the compose file is checked by reading it.
interface ComposeService { command?: string[]; environment?: Record<string, string>; ports?: string[]; volumes?: string[]; secrets?: string[]; image?: string }
const compose = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, ComposeService>; secrets: Record<string, { file: string }> };
const services = readdirSync(join(REPO_ROOT, 'services')).filter((s) => existsSync(join(REPO_ROOT, 'services', s, 'src', 'main.ts')));

describe('docker-compose.yml', () => {
  it.each(services)('runs %s with its command, NATS identity, config and secrets', (name) => {
    const svc = compose.services[name];
    expect(svc, `${name} missing from docker-compose.yml`).toBeDefined();
    expect(svc!.command).toEqual(['node', `services/${name}/src/main.ts`]);
    expect(svc!.environment).toMatchObject({ NATS_URL: 'nats://nats:4222', NATS_USER: name, HOMELAB_CONFIG: '/etc/homelab/lab.yaml', NATS_PASSWORDS_FILE: '/run/secrets/nats_passwords' });
    expect(svc!.volumes).toContain('./config/lab.yaml:/etc/homelab/lab.yaml:ro');
    expect(svc!.secrets).toEqual(['nats_passwords']);
  });

  it('publishes the ingress on 8080 and runs NATS with the project nats.conf', () => {
    expect(compose.services['ingress']!.ports).toContain('8080:8080');
    const nats = compose.services['nats']!;
    expect(nats.command).toEqual(['-c', '/etc/nats/nats.conf', '-sd', '/data']);
    expect(nats.volumes).toContain('./nats.conf:/etc/nats/nats.conf:ro');
    expect(nats.volumes).toContain('./.secrets/nats-hashes.conf:/etc/nats/.secrets/nats-hashes.conf:ro');
    expect(nats.volumes!.some((v) => v.includes('nats-passwords'))).toBe(false);
    expect(compose.secrets['nats_passwords']!.file).toBe('./.secrets/nats-passwords.conf');
  });

  it('provisions Prometheus and Grafana from deploy/', () => {
    expect(compose.services['prometheus']!.volumes).toContain('./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
    expect(compose.services['grafana']!.volumes).toContain('./deploy/grafana/provisioning:/etc/grafana/provisioning:ro');
    for (const file of ['deploy/prometheus/prometheus.yml', 'deploy/grafana/provisioning/datasources/prometheus.yml', 'deploy/grafana/provisioning/dashboards/homelab.yml']) {
      expect(() => parse(readFileSync(join(REPO_ROOT, file), 'utf8')), file).not.toThrow();
    }
  });

  it('the NATS identities of compose exist in nats.conf', () => {
    const conf = readFileSync(join(REPO_ROOT, 'nats.conf'), 'utf8');
    for (const name of services) expect(conf).toMatch(new RegExp(`user: ${name}, password: \\$HOMELAB_NATS_PASS_${name.toUpperCase().replace(/-/g, '_')}`));
  });
});
