import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Value } from '@sinclair/typebox/value';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { parseDocument } from 'yaml';
import { CLOUD_PROVIDERS, LOCAL_PROVIDERS, PROVIDER_PREFIX_PATTERN } from './providers.ts';
import {
  LabConfigSchema, type CloudBackendConfig, type LabConfigFile, type LocalBackendConfig, type ServiceConfig, type ServiceKind,
  type HealthConfig, type ImageModelConfig, type ImagesConfigFile,
} from './schema.ts';

/** The default lab: the seed's IP scheme, ports and storage paths. */
export const DEFAULT_CONFIG_FILE = fileURLToPath(new URL('../../../config/lab.yaml', import.meta.url));

export class ConfigError extends Error {
  readonly file: string;
  readonly field: string | undefined;
  constructor(file: string, field: string | undefined, message: string) {
    super(`${file}: ${field ? `${field}: ` : ''}${message}`);
    this.name = 'ConfigError';
    this.file = file;
    this.field = field;
  }
}

export interface LabService extends Omit<ServiceConfig, 'url'> {
  node: string;
  name: string;
  /** Origin (`http://192.168.1.7:8000`); undefined when neither the node's address nor an override gives one. */
  url: string | undefined;
  /** The node's address (host part), when known. */
  address: string | undefined;
}

export type LocalBackend = LocalBackendConfig & { url: string; apiKey?: string; maxConcurrent: number; maxQueue: number };
export type CloudBackend = CloudBackendConfig & { apiKey: string };

export interface NotConfigured {
  /** Which service says so at start: the router (inference), health or media. */
  area: 'inference' | 'health' | 'media';
  message: string;
}

export interface LabConfig {
  readonly file: string;
  readonly lab: LabConfigFile['lab'];
  readonly nats: LabConfigFile['nats'];
  readonly gateway: LabConfigFile['gateway'];
  readonly nodes: LabConfigFile['nodes'];
  /** Every service of every node, addresses resolved and environment overrides applied. */
  readonly services: readonly LabService[];
  /** Backends that can be used: local ones with an address, cloud ones with a key. */
  readonly backends: { vllm?: LocalBackend; ollama?: LocalBackend; openai?: CloudBackend; anthropic?: CloudBackend };
  readonly aliases: Readonly<Record<string, readonly string[]>>;
  readonly discoveryIntervalMs: number;
  /** How long the router waits at start for a backend's workers to answer its first discovery. */
  readonly firstDiscoveryWaitMs: number;
  /** The Responses API's stored responses: how long they are kept (docs/dialects.md). */
  readonly responses: LabConfigFile['inference']['responses'];
  readonly routing: LabConfigFile['routing'];
  readonly auth: LabConfigFile['auth'];
  readonly media: LabConfigFile['media'];
  /** The health service's settings, environment applied (docs/health.md). */
  readonly health: HealthConfig;
  /** The telemetry service's settings, environment applied (docs/telemetry.md). */
  readonly telemetry: LabConfigFile['telemetry'];
  /** Image generation: ComfyUI, the workflows that are the lab's image models, jobs and files (docs/images.md). */
  readonly images: ImagesConfig;
  /** What is left unconfigured and why, for one line each at start by the service of that area. */
  readonly notConfigured: readonly NotConfigured[];
}

// --- images ---
/** One image model of the lab: a ComfyUI workflow, its file resolved. */
export interface ImageModel extends Omit<ImageModelConfig, 'defaults' | 'maxSide' | 'maxSteps'> {
  name: string;
  defaults: NonNullable<ImageModelConfig['defaults']>;
  maxSide: number;
  maxSteps: number;
  /** Absolute path of the workflow file. */
  workflowFile: string;
  /** What the mapping makes of it: an input image makes it an edit model, a mask an inpainting one. */
  kind: 'text-to-image' | 'image-to-image' | 'inpainting';
}

export interface ImagesConfig extends Omit<ImagesConfigFile, 'comfyui' | 'models'> {
  /** ComfyUI when it has an address (undefined: planned, or no address). */
  readonly comfyui: (ImagesConfigFile['comfyui'] & { url: string }) | undefined;
  readonly models: Readonly<Record<string, ImageModel>>;
}
// --- end images ---

const check = TypeCompiler.Compile(LabConfigSchema);

/** Kinds whose address and secrets the environment can override (`<KIND>_URL`, `<KIND>_API_KEY`, …). */
const ENV_KINDS: ServiceKind[] = ['vllm', 'ollama', 'comfyui', 'sonarr', 'radarr', 'prowlarr', 'qbittorrent', 'jellyfin', 'immich', 'proxmox'];

export interface LoadConfigOptions {
  /** Path of the YAML; default `HOMELAB_CONFIG`, then the seed's lab. */
  file?: string;
  env?: Record<string, string | undefined>;
}

/** Reads, validates and resolves the lab's config. Throws ConfigError naming the file and the field. */
export function loadConfig(options: LoadConfigOptions = {}): LabConfig {
  const env = options.env ?? process.env;
  const file = options.file ?? (env['HOMELAB_CONFIG'] || DEFAULT_CONFIG_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, undefined, `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseConfig(text, file, env);
}

export function parseConfig(text: string, file: string, env: Record<string, string | undefined> = {}): LabConfig {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ConfigError(file, undefined, `invalid YAML at line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`);
  }
  const raw: unknown = doc.toJS() ?? {};
  const withDefaults = Value.Default(LabConfigSchema, structuredClone(raw));
  if (!check.Check(withDefaults)) {
    const first = check.Errors(withDefaults).First()!;
    const field = first.path.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~')).join('.') || undefined;
    // TypeBox reports an extra key at its own path: say it the way a person reads it.
    throw new ConfigError(file, field, first.message === 'Unexpected property' ? 'unknown key' : first.message);
  }
  return resolve(withDefaults, file, env);
}

function resolve(cfg: LabConfigFile, file: string, env: Record<string, string | undefined>): LabConfig {
  const notConfigured: NotConfigured[] = [];
  const nodes = structuredClone(cfg.nodes);
  const services = resolveServices(nodes, file, env);
  const backends = resolveBackends(cfg.inference, services, file, env, notConfigured);
  const media = resolveMedia(cfg.media, services, file, env, notConfigured);
  return deepFreeze({
    file,
    lab: cfg.lab,
    // NATS_REPLICAS: per process, e.g. the media node's service on its single-server leaf while the hub is R3.
    nats: { ...cfg.nats, url: env['NATS_URL'] || cfg.nats.url, ...(env['NATS_REPLICAS'] && { replicas: parseReplicas(env['NATS_REPLICAS'], file) }) },
    gateway: { ...cfg.gateway, ...(env['PORT'] && { port: parsePort(env['PORT'], file) }) },
    nodes,
    services,
    backends,
    aliases: cfg.inference.aliases,
    discoveryIntervalMs: cfg.inference.discoveryIntervalMs,
    firstDiscoveryWaitMs: cfg.inference.firstDiscoveryWaitMs,
    responses: cfg.inference.responses,
    routing: cfg.routing,
    auth: { ...cfg.auth, mode: parseAuthMode(env['HOMELAB_AUTH'], cfg.auth.mode, file) },
    media,
    health: resolveHealth(cfg.health, cfg.nodes, file, env, notConfigured),
    images: resolveImages(cfg.images, services, file, notConfigured, Boolean(backends.openai)),
    telemetry: {
      metricsPort: env['METRICS_PORT'] ? parsePort(env['METRICS_PORT'], file, 'METRICS_PORT') : cfg.telemetry.metricsPort,
      metricsHost: env['METRICS_HOST'] || cfg.telemetry.metricsHost,
    },
    notConfigured,
  });
}

/** Every service of every node with its origin, then the environment's overrides (`<KIND>_URL`, keys, users). */
function resolveServices(nodes: LabConfigFile['nodes'], file: string, env: Record<string, string | undefined>): LabService[] {
  const services: LabService[] = [];
  for (const [nodeName, node] of Object.entries(nodes)) {
    for (const [name, svc] of Object.entries(node.services ?? {})) {
      const scheme = svc.scheme ?? (svc.kind === 'proxmox' ? 'https' : 'http');
      const url = svc.url ?? (node.address ? `${scheme}://${hostPort(node.address, svc.port)}` : undefined);
      services.push({ ...svc, node: nodeName, name, url, address: node.address });
    }
  }
  for (const kind of ENV_KINDS) applyServiceEnv(services, kind, file, env);
  // Proxmox calls its key an API token (`USER@REALM!TOKENID=UUID`); the health probe uses it.
  if (env['PROXMOX_API_TOKEN']) for (const s of services) if (s.kind === 'proxmox') s.apiKey = env['PROXMOX_API_TOKEN'];
  return services;
}

/**
 * `<KIND>_URL` and the kind's secrets, on the first service of that kind. A URL for a kind the
 * config does not have adds one (node `env`): a backend can be pointed at without editing the file;
 * an empty URL takes the address away.
 */
function applyServiceEnv(services: LabService[], kind: ServiceKind, file: string, env: Record<string, string | undefined>): void {
  const prefix = kind.toUpperCase();
  const url = env[`${prefix}_URL`];
  const parsed = url ? parseServiceUrl(url, `${prefix}_URL`, file) : undefined;
  let svc = services.find((s) => s.kind === kind);
  if (parsed && !svc) {
    const port = Number(parsed.port) || 80;
    svc = { kind, port, node: 'env', name: kind, url: undefined, address: undefined };
    services.push(svc);
  }
  if (!svc) return;
  if (url !== undefined) svc.url = url === '' ? undefined : stripSlash(url);
  if (parsed) svc.address = parsed.hostname;
  const apiKey = env[`${prefix}_API_KEY`];
  if (apiKey) svc.apiKey = apiKey;
  const username = env[`${prefix}_USERNAME`];
  if (username) svc.username = username;
  const password = env[`${prefix}_PASSWORD`];
  if (password) svc.password = password;
}

/** Backends that can be used: local ones with an address, cloud ones with a key; the others said in `notConfigured`. */
function resolveBackends(
  inference: LabConfigFile['inference'], services: LabService[], file: string, env: Record<string, string | undefined>, notConfigured: NotConfigured[],
): LabConfig['backends'] {
  const backends: LabConfig['backends'] = {};
  for (const provider of LOCAL_PROVIDERS) {
    const b = inference[provider];
    if (!b) { notConfigured.push({ area: 'inference', message: `${provider}: not in inference config` }); continue; }
    const [node, name] = b.service.split('/');
    const svc = services.find((s) => s.node === node && s.name === name) ?? services.find((s) => s.kind === provider && s.node === 'env');
    if (!svc) throw new ConfigError(file, `inference.${provider}.service`, `no service '${b.service}' in nodes`);
    if (!svc.url || svc.planned) { notConfigured.push({ area: 'inference', message: `${provider}: ${b.service} has no address` }); continue; }
    // vLLM batches many sequences at once; Ollama runs few in parallel (OLLAMA_NUM_PARALLEL).
    const limits = provider === 'vllm' ? { maxConcurrent: 64, maxQueue: 256 } : { maxConcurrent: 4, maxQueue: 64 };
    backends[provider] = { ...b, url: svc.url, maxConcurrent: b.maxConcurrent ?? limits.maxConcurrent, maxQueue: b.maxQueue ?? limits.maxQueue, ...(svc.apiKey && { apiKey: svc.apiKey }) };
  }
  const cloudEnv = { openai: 'OPENAI', anthropic: 'ANTHROPIC' } as const;
  for (const provider of CLOUD_PROVIDERS) {
    const b = inference[provider];
    const prefix = cloudEnv[provider];
    const apiKey = env[`${prefix}_API_KEY`] || b?.apiKey;
    if (!b) { notConfigured.push({ area: 'inference', message: `${provider}: not in inference config` }); continue; }
    if (!apiKey) { notConfigured.push({ area: 'inference', message: `${provider}: no API key (${prefix}_API_KEY)` }); continue; }
    backends[provider] = { ...b, apiKey, baseURL: stripSlash(env[`${prefix}_BASE_URL`] || b.baseURL) };
  }
  for (const alias of Object.keys(inference.aliases)) {
    if (new RegExp(PROVIDER_PREFIX_PATTERN).test(alias)) throw new ConfigError(file, `inference.aliases.${alias}`, 'an alias cannot start with a provider prefix');
  }
  return backends;
}

// --- health service ---
/** The `health:` section with its environment overrides, its references checked against `nodes`. */
function resolveHealth(
  cfg: HealthConfig, nodes: LabConfigFile['nodes'], file: string, env: Record<string, string | undefined>, notConfigured: NotConfigured[],
): HealthConfig {
  const health = structuredClone(cfg);
  for (const ref of Object.keys(health.targets)) {
    const [node = '', service = ''] = ref.split('/');
    if (!nodes[node]) throw new ConfigError(file, `health.targets.${ref}`, `no node '${node}' in nodes`);
    if (service !== 'host' && !nodes[node].services?.[service]) throw new ConfigError(file, `health.targets.${ref}`, `node '${node}' has no service '${service}' (use '${node}/host' for the node itself)`);
  }
  if (nodes[health.discovery.node]) throw new ConfigError(file, 'health.discovery.node', `'${health.discovery.node}' is a node of the lab; pick another name for the gateway's own services`);
  const alerts = health.alerts;
  if (env['HEALTH_WEBHOOK_URL']) alerts.webhook = { ...alerts.webhook, url: env['HEALTH_WEBHOOK_URL'] };
  if (env['NTFY_TOPIC']) alerts.ntfy = { url: alerts.ntfy?.url ?? 'https://ntfy.sh', ...alerts.ntfy, topic: env['NTFY_TOPIC'] };
  if (alerts.ntfy && env['NTFY_URL']) alerts.ntfy.url = env['NTFY_URL'];
  if (alerts.ntfy && env['NTFY_TOKEN']) alerts.ntfy.token = env['NTFY_TOKEN'];
  for (const [field, url] of [['health.alerts.webhook.url', alerts.webhook?.url], ['health.alerts.ntfy.url', alerts.ntfy?.url]] as const) {
    if (url !== undefined && !/^https?:\/\/[^/]/.test(url)) throw new ConfigError(file, field, 'not an http(s) URL');
  }
  if (alerts.ntfy) alerts.ntfy.url = stripSlash(alerts.ntfy.url);
  if (!alerts.webhook && !alerts.ntfy) notConfigured.push({ area: 'health', message: 'health alerts: no webhook or ntfy (HEALTH_WEBHOOK_URL, NTFY_TOPIC)' });
  return health;
}
// --- end health service ---

// --- images ---
/** The `images:` section: ComfyUI's address, workflow files next to the config, aliases checked. */
function resolveImages(cfg: ImagesConfigFile, services: LabService[], file: string, notConfigured: NotConfigured[], openai: boolean): ImagesConfig {
  const [node, name] = cfg.comfyui.service.split('/');
  const svc = services.find((s) => s.node === node && s.name === name) ?? services.find((s) => s.kind === 'comfyui' && s.node === 'env');
  if (svc && svc.kind !== 'comfyui') throw new ConfigError(file, 'images.comfyui.service', `'${cfg.comfyui.service}' is a ${svc.kind} service, not comfyui`);
  const comfyui = svc?.url && !svc.planned ? { ...cfg.comfyui, url: svc.url } : undefined;
  if (!comfyui && Object.keys(cfg.models).length > 0) {
    notConfigured.push({ area: 'inference', message: `comfyui: ${svc ? `${cfg.comfyui.service} has no address${svc.planned ? ' (planned)' : ''}` : `no service '${cfg.comfyui.service}' in nodes`} (COMFYUI_URL)` });
  }
  const base = dirname(file);
  const models: Record<string, ImageModel> = {};
  for (const [modelName, model] of Object.entries(cfg.models)) {
    if (model.mapping.mask && !model.mapping.image) throw new ConfigError(file, `images.models.${modelName}.mapping.mask`, 'a mask needs an input image (mapping.image) too');
    const kind = model.mapping.mask ? 'inpainting' : model.mapping.image ? 'image-to-image' : 'text-to-image';
    models[modelName] = { ...model, defaults: model.defaults ?? {}, maxSide: model.maxSide ?? 2048, maxSteps: model.maxSteps ?? 150, name: modelName, workflowFile: isAbsolute(model.workflow) ? model.workflow : resolvePath(base, model.workflow), kind };
  }
  for (const [alias, candidates] of Object.entries(cfg.aliases)) {
    if (/^(comfyui|openai)\//.test(alias) || models[alias]) throw new ConfigError(file, `images.aliases.${alias}`, 'an alias cannot start with a provider prefix or be the name of a model');
    for (const candidate of candidates) {
      const model = candidate.slice(candidate.indexOf('/') + 1);
      if (candidate.startsWith('comfyui/') && !models[model]) throw new ConfigError(file, `images.aliases.${alias}`, `no image model '${model}' in images.models`);
    }
  }
  if (!openai && cfg.cloudModels.length > 0) notConfigured.push({ area: 'inference', message: 'openai images: no API key (OPENAI_API_KEY)' });
  return { ...cfg, comfyui, models };
}
// --- end images ---

// --- media service ---
/** The `media:` section with its environment overrides, its targets checked against the services. */
function resolveMedia(
  cfg: LabConfigFile['media'], services: LabService[], file: string, env: Record<string, string | undefined>, notConfigured: NotConfigured[],
): LabConfigFile['media'] {
  const media = { ...cfg };
  if (env['MEDIA_PATHS'] !== undefined) media.paths = env['MEDIA_PATHS'].split(',').map((p) => p.trim()).filter(Boolean);
  if (env['MEDIA_WEBHOOK_SECRET']) media.webhooks = { ...media.webhooks, secret: env['MEDIA_WEBHOOK_SECRET'] };
  if (env['MEDIA_WEBHOOK_PORT']) {
    const port = Number(env['MEDIA_WEBHOOK_PORT']);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(file, 'MEDIA_WEBHOOK_PORT (environment)', `not a port: ${env['MEDIA_WEBHOOK_PORT']}`);
    media.webhooks = { ...media.webhooks, port };
  }
  if (media.webhooks.secret !== undefined && media.webhooks.secret.length < 16) throw new ConfigError(file, 'media.webhooks.secret', 'at least 16 characters');
  for (const name of Object.keys(media.targets)) {
    if (!services.some((s) => s.name === name && MEDIA_KINDS.includes(s.kind))) throw new ConfigError(file, `media.targets.${name}`, `no media service (${MEDIA_KINDS.join(', ')}) named '${name}' in nodes`);
  }
  if (media.webhooks.enabled && !media.webhooks.secret) notConfigured.push({ area: 'media', message: 'media webhooks: no shared secret (media.webhooks.secret, MEDIA_WEBHOOK_SECRET)' });
  return media;
}

/** The kinds the media service polls. */
const MEDIA_KINDS: readonly ServiceKind[] = ['sonarr', 'radarr', 'prowlarr', 'qbittorrent', 'jellyfin', 'immich'];
// --- end media service ---

function parseAuthMode(value: string | undefined, fallback: 'keys' | 'none', file: string): 'keys' | 'none' {
  if (value === undefined || value === '') return fallback;
  if (value === 'none' || value === 'keys') return value;
  throw new ConfigError(file, 'HOMELAB_AUTH (environment)', `must be 'keys' or 'none', not '${value}'`);
}

function parseReplicas(value: string, file: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 5) throw new ConfigError(file, 'NATS_REPLICAS (environment)', `not a replica count from 1 to 5: ${value}`);
  return n;
}

function parsePort(value: string, file: string, variable = 'PORT'): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(file, `${variable} (environment)`, `not a port: ${value}`);
  return port;
}

/** The value is not repeated in the error: a URL may carry a user and password. */
function parseServiceUrl(value: string, variable: string, file: string): URL {
  const url = URL.parse(value);
  if (!url || !/^https?:$/.test(url.protocol) || !url.hostname) throw new ConfigError(file, `${variable} (environment)`, 'not an http(s) URL (like http://192.168.1.7:8000)');
  return url;
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function stripSlash(url: string): string {
  return url.endsWith('/') ? url.slice(0, -1) : url;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** A copy of the config safe to log: every secret replaced. */
export function redactConfig(config: LabConfig): unknown {
  return JSON.parse(JSON.stringify(config, (key, value: unknown) => (/^(apiKey|password|token|secret)$/i.test(key) && value ? '[redacted]' : value)));
}
