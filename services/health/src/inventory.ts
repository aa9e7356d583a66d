import { healthKey } from '@homelab/bus';
import type { HealthConfig, HealthTargetConfig, LabConfig, LabService } from '@homelab/config';
import type { BodyCondition, HttpProbeSpec, ProbeSpec } from './probes.ts';
import { redactUrl } from './redact.ts';
import type { Damping } from './state.ts';

/*
 * What to probe, from the lab's config: every service of every node with the probe that fits its
 * kind, a node-level `host` target for nodes that have no service of their own (the router), and
 * a listed-but-unprobed target for whatever has no address or is only planned.
 */

export interface Target {
  /** `<node>.<service>` */
  key: string;
  node: string;
  service: string;
  /** The service kind, `host` for node reachability, `nats-service` for `$SRV` discovery. */
  kind: string;
  /** `http`, `tcp`, `tls`, `ollama`, `qbittorrent`, `srv` (fed by discovery) or `none`. */
  probe: string;
  /** What is probed, secrets stripped; null when nothing is. */
  display: string | null;
  /** null: not probed here (see `reason`), or fed from elsewhere (`srv`). */
  spec: ProbeSpec | null;
  /** Why a target is not probed (`no address`, `planned`, `disabled in config`). */
  reason?: string;
  intervalMs: number;
  retryIntervalMs: number;
  timeoutMs: number;
  degradedLatencyMs: number;
  damping: Damping;
  /** Removed from every error text. */
  secrets: string[];
}

/** Web UIs and unknown HTTP services: any answer below 500 means the server is alive. */
export const GENERIC_HTTP_STATUS = ['2xx', '3xx', '4xx'] as const;
/** Node-level reachability: TCP to this port unless `health.targets.<node>/host` says otherwise. */
export const DEFAULT_HOST_PORT = 80;

type Tuning = Pick<Target, 'intervalMs' | 'retryIntervalMs' | 'timeoutMs' | 'degradedLatencyMs' | 'damping'>;

function tuning(h: HealthConfig, o: HealthTargetConfig | undefined): Tuning {
  return {
    intervalMs: o?.intervalMs ?? h.intervalMs,
    retryIntervalMs: o?.retryIntervalMs ?? Math.min(h.retryIntervalMs, o?.intervalMs ?? h.intervalMs),
    timeoutMs: o?.timeoutMs ?? h.timeoutMs,
    degradedLatencyMs: o?.degradedLatencyMs ?? h.degradedLatencyMs,
    damping: { failuresBeforeDown: o?.failuresBeforeDown ?? h.failuresBeforeDown, successesBeforeUp: o?.successesBeforeUp ?? h.successesBeforeUp },
  };
}

/** Every target of the lab, in config order. */
export function buildInventory(config: LabConfig): Target[] {
  const h = config.health;
  const targets: Target[] = [];
  const nodeNames = new Set(Object.keys(config.nodes));
  for (const [nodeName, node] of Object.entries(config.nodes)) {
    const services = config.services.filter((s) => s.node === nodeName);
    for (const svc of services) targets.push(serviceTarget(svc, h.targets[`${nodeName}/${svc.name}`], h));
    const hostOverride = h.targets[`${nodeName}/host`];
    if (hostOverride || services.every((s) => s.planned)) targets.push(hostTarget(nodeName, node.address, hostOverride, h));
  }
  // Services the environment added without a node in the file (VLLM_URL=… alone).
  for (const svc of config.services) if (!nodeNames.has(svc.node)) targets.push(serviceTarget(svc, undefined, h));
  return targets;
}

function base(node: string, service: string, kind: string, h: HealthConfig, o: HealthTargetConfig | undefined): Omit<Target, 'probe' | 'display' | 'spec'> {
  return { key: healthKey(node, service), node, service, kind, ...tuning(h, o), secrets: [] };
}

function unprobed(b: Omit<Target, 'probe' | 'display' | 'spec'>, reason: string): Target {
  return { ...b, probe: 'none', display: null, spec: null, reason };
}

export function serviceTarget(svc: LabService, o: HealthTargetConfig | undefined, h: HealthConfig): Target {
  const b = base(svc.node, svc.name, svc.kind, h, o);
  b.secrets = [svc.apiKey, svc.password, ...Object.values(o?.headers ?? {})].filter((s): s is string => !!s && s.length >= 4);
  if (svc.planned) return unprobed(b, 'planned');
  if (o?.enabled === false) return unprobed(b, 'disabled in config');
  if (!svc.url) return unprobed(b, 'no address');
  let origin: URL;
  try {
    origin = new URL(svc.url);
  } catch {
    return unprobed(b, 'invalid url');
  }
  // `kind: https` without a scheme resolves to http://…:443; the kind says what it speaks.
  if (svc.kind === 'https' && !svc.scheme && origin.protocol === 'http:') origin.protocol = 'https:';
  if (o?.port) origin.port = String(o.port);
  const host = origin.hostname.replace(/^\[|\]$/g, '');
  const port = Number(origin.port) || (origin.protocol === 'https:' ? 443 : 80);
  const insecureTls = o?.insecureTls ?? svc.insecureTls ?? false;

  const spec = o?.probe ? explicitProbe(o.probe, origin, host, port, insecureTls, o, h) : builtinProbe(svc, origin, host, port, insecureTls, o, h);
  return { ...b, probe: spec.type, display: display(spec), spec };
}

function hostTarget(node: string, address: string | undefined, o: HealthTargetConfig | undefined, h: HealthConfig): Target {
  const b = base(node, 'host', 'host', h, o);
  b.secrets = Object.values(o?.headers ?? {}).filter((s) => s.length >= 4);
  if (o?.enabled === false) return unprobed(b, 'disabled in config');
  if (!address) return unprobed(b, 'no address');
  const port = o?.port ?? DEFAULT_HOST_PORT;
  const host = address.replace(/^\[|\]$/g, '');
  const origin = new URL(`${port === 443 ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`);
  const spec = explicitProbe(o?.probe ?? 'tcp', origin, host, port, o?.insecureTls ?? false, o, h);
  return { ...b, probe: spec.type, display: display(spec), spec };
}

function explicitProbe(kind: 'http' | 'tcp' | 'tls', origin: URL, host: string, port: number, insecureTls: boolean, o: HealthTargetConfig | undefined, h: HealthConfig): ProbeSpec {
  if (kind === 'tcp') return { type: 'tcp', host, port, ...(o?.expectBanner && { expectBanner: o.expectBanner }) };
  if (kind === 'tls') return { type: 'tls', host, port, insecureTls };
  return http(origin, '/', GENERIC_HTTP_STATUS, [], insecureTls, o, h);
}

/** An HTTP probe of `path` on the service, the target's overrides applied over the kind's defaults. */
function http(
  origin: URL, path: string, expectStatus: ReadonlyArray<number | string>, body: readonly BodyCondition[], insecureTls: boolean,
  o: HealthTargetConfig | undefined, h: HealthConfig, extra: Partial<HttpProbeSpec> = {},
): HttpProbeSpec {
  return {
    type: 'http',
    url: new URL(o?.path ?? path, origin).toString(),
    method: o?.method ?? 'GET',
    headers: { ...extra.headers, ...o?.headers },
    expectStatus: o?.expectStatus ?? expectStatus,
    body: o?.body ?? body,
    insecureTls,
    maxRedirects: o?.maxRedirects ?? h.maxRedirects,
    ...(extra.degradedStatus && { degradedStatus: extra.degradedStatus }),
    ...(extra.extract && { extract: extra.extract }),
  };
}

function builtinProbe(svc: LabService, origin: URL, host: string, port: number, insecureTls: boolean, o: HealthTargetConfig | undefined, h: HealthConfig): ProbeSpec {
  const root = origin.toString();
  switch (svc.kind) {
    case 'vllm':
      return http(origin, '/health', [200], [], insecureTls, o, h);
    case 'ollama':
      return o?.path || o?.body || o?.expectStatus ? http(origin, '/api/version', [200], [], insecureTls, o, h) : { type: 'ollama', baseUrl: root };
    case 'jellyfin':
      return http(origin, '/health', [200], [{ contains: 'Healthy' }], insecureTls, o, h);
    case 'sonarr':
    case 'radarr':
    case 'prowlarr':
      return http(origin, '/ping', [200], [{ json: 'status', equals: 'OK' }], insecureTls, o, h);
    case 'qbittorrent':
      return o?.path || o?.body || o?.expectStatus
        ? http(origin, '/api/v2/app/version', [200], [], insecureTls, o, h)
        : { type: 'qbittorrent', baseUrl: root, ...(svc.username && { username: svc.username }), ...(svc.password && { password: svc.password }) };
    case 'immich':
      return http(origin, '/api/server/ping', [200], [{ json: 'res', equals: 'pong' }], insecureTls, o, h);
    case 'proxmox': {
      // With an API token: the version call (401/403 = alive, token wrong: degraded). Without: the TLS handshake of pveproxy.
      if (!svc.apiKey) return { type: 'tls', host, port, insecureTls };
      const token = svc.apiKey.startsWith('PVEAPIToken=') ? svc.apiKey : `PVEAPIToken=${svc.apiKey}`;
      return http(origin, '/api2/json/version', [200], [{ json: 'data.version', exists: true }], insecureTls, o, h, {
        headers: { authorization: token }, degradedStatus: [401, 403], extract: { version: 'data.version' },
      });
    }
    case 'tcp':
      return { type: 'tcp', host, port, ...(o?.expectBanner && { expectBanner: o.expectBanner }) };
    case 'ssh':
      return { type: 'tcp', host, port, expectBanner: o?.expectBanner ?? 'SSH-' };
    case 'comfyui':
      return o?.path || o?.body || o?.expectStatus ? http(origin, '/system_stats', [200], [], insecureTls, o, h) : { type: 'comfyui', baseUrl: root };
    case 'http':
    case 'https':
    case 'gateway':
      return http(origin, '/', GENERIC_HTTP_STATUS, [], insecureTls, o, h);
  }
}

function display(spec: ProbeSpec): string {
  switch (spec.type) {
    case 'http': return redactUrl(spec.url);
    case 'tcp': return `${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.port}`;
    case 'tls': return `tls://${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.port}`;
    case 'ollama': return redactUrl(new URL('/api/version', spec.baseUrl).toString());
    case 'comfyui': return redactUrl(new URL('/system_stats', spec.baseUrl).toString());
    case 'qbittorrent': return redactUrl(new URL('/api/v2/app/version', spec.baseUrl).toString());
  }
}

/** A `$SRV` service as a target (fed by discovery, not probed by the monitor). */
export function discoveryTarget(name: string, h: HealthConfig): Target {
  const node = h.discovery.node;
  return {
    key: healthKey(node, name), node, service: name, kind: 'nats-service', probe: 'srv', display: `$SRV.PING.${name}`, spec: null,
    intervalMs: h.discovery.intervalMs, retryIntervalMs: h.discovery.intervalMs, timeoutMs: h.discovery.waitMs, degradedLatencyMs: h.degradedLatencyMs,
    damping: { failuresBeforeDown: h.discovery.missedRoundsBeforeDown, successesBeforeUp: 1 }, secrets: [],
  };
}
