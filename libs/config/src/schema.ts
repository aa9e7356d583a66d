import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { KeyBackendSchema, PROVIDER_PREFIX_PATTERN } from './providers.ts';

/*
 * The lab's YAML, as a schema. Unknown keys are errors (a typo must not silently become a
 * default), and every default lives here, in the schema, in one place.
 */
const Obj = <P extends Parameters<typeof Type.Object>[0]>(props: P) => Type.Object(props, { additionalProperties: false });
const Opt = <T extends TSchema>(t: T) => Type.Optional(t);
const Ms = (def: number) => Type.Integer({ minimum: 1, default: def });

export const ServiceKinds = ['vllm', 'ollama', 'comfyui', 'jellyfin', 'sonarr', 'radarr', 'prowlarr', 'qbittorrent', 'immich', 'proxmox', 'http', 'https', 'tcp', 'ssh', 'gateway'] as const;
export type ServiceKind = (typeof ServiceKinds)[number];

const ServiceSchema = Obj({
  kind: Type.Union(ServiceKinds.map((k) => Type.Literal(k))),
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
  /** `http` (default for web services) or `https`. */
  scheme: Opt(Type.Union([Type.Literal('http'), Type.Literal('https')])),
  /** A full origin that replaces address:port (what `VLLM_URL` and friends set). */
  url: Opt(Type.String({ minLength: 1 })),
  /** Known from the seed but not running yet: listed, never probed or used. */
  planned: Opt(Type.Boolean()),
  apiKey: Opt(Type.String()),
  username: Opt(Type.String()),
  password: Opt(Type.String()),
  /** Accept a self-signed certificate (Proxmox). */
  insecureTls: Opt(Type.Boolean()),
  description: Opt(Type.String()),
});

const NodeSchema = Obj({
  address: Opt(Type.String({ minLength: 1 })),
  role: Opt(Type.String()),
  os: Opt(Type.String()),
  host: Opt(Type.String({ description: 'The node this VM runs on' })),
  services: Opt(Type.Record(Type.String({ pattern: '^[a-z0-9][a-z0-9-]*$' }), ServiceSchema)),
});

const LocalBackendSchema = Obj({
  /** `node/service` in `nodes` that this backend runs as. */
  service: Type.String({ pattern: '^[a-z0-9-]+/[a-z0-9-]+$' }),
  connectTimeoutMs: Ms(3000),
  firstTokenTimeoutMs: Ms(30_000),
  idleTimeoutMs: Ms(30_000),
  totalTimeoutMs: Ms(600_000),
  keepAlive: Opt(Type.String()),
  /** Requests this backend serves at once (per router replica); 0 = no limit. Default: vLLM 64, Ollama 4. */
  maxConcurrent: Opt(Type.Integer({ minimum: 0 })),
  /** Requests that may wait for a slot; past that the next candidate gets the request. Default: vLLM 256, Ollama 64. */
  maxQueue: Opt(Type.Integer({ minimum: 0 })),
  /** At the limit: `spill` to the next candidate at once, or `wait` in the queue first. */
  whenSaturated: Type.Union([Type.Literal('spill'), Type.Literal('wait')], { default: 'wait' }),
});

const CloudBackendSchema = Obj({
  baseURL: Type.String({ minLength: 1 }),
  apiKey: Opt(Type.String()),
  models: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
  connectTimeoutMs: Ms(5000),
  firstTokenTimeoutMs: Ms(60_000),
  idleTimeoutMs: Ms(60_000),
  totalTimeoutMs: Ms(600_000),
  defaultMaxTokens: Opt(Type.Integer({ minimum: 1 })),
  /** Requests this backend serves at once (per router replica); 0 = no limit. */
  maxConcurrent: Type.Integer({ minimum: 0, default: 32 }),
  /** Requests that may wait for a slot; past that the next candidate gets the request. */
  maxQueue: Type.Integer({ minimum: 0, default: 128 }),
  /** At the limit: `spill` to the next candidate at once, or `wait` in the queue first. */
  whenSaturated: Type.Union([Type.Literal('spill'), Type.Literal('wait')], { default: 'wait' }),
});

// --- health service (services/health; every key is described in docs/health.md) ---
const HealthTuning = {
  /** Time between two probes of a target while its state holds. */
  intervalMs: Opt(Type.Integer({ minimum: 1 })),
  /** Time between probes while a change is pending (a failure seen, not yet enough to call it down). */
  retryIntervalMs: Opt(Type.Integer({ minimum: 1 })),
  /** Deadline of one probe: connect, TLS, redirects and body included. */
  timeoutMs: Opt(Type.Integer({ minimum: 1 })),
  /** Consecutive failed probes before a target is down. */
  failuresBeforeDown: Opt(Type.Integer({ minimum: 1, maximum: 100 })),
  /** Consecutive good probes before a down or degraded target is up again. */
  successesBeforeUp: Opt(Type.Integer({ minimum: 1, maximum: 100 })),
  /** A successful probe slower than this counts as degraded. */
  degradedLatencyMs: Opt(Type.Integer({ minimum: 1 })),
};
const ExpectStatus = Type.Array(Type.Union([Type.Integer({ minimum: 100, maximum: 599 }), Type.String({ pattern: '^[1-5]xx$' })]), { minItems: 1 });
/** `{ json: status, equals: OK }`, `{ json: data.version, exists: true }`, `{ contains: Healthy }`. */
const BodyConditionSchema = Type.Union([
  Obj({ json: Type.String({ minLength: 1 }), equals: Opt(Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()])), exists: Opt(Type.Boolean()) }),
  Obj({ contains: Type.String({ minLength: 1 }) }),
]);
const HealthTargetSchema = Obj({
  ...HealthTuning,
  /** false: listed as `unknown`, never probed. */
  enabled: Opt(Type.Boolean()),
  /** Replace the kind's built-in probe: `http` (GET path, status and body checks), `tcp` (connect), `tls` (handshake). */
  probe: Opt(Type.Union([Type.Literal('http'), Type.Literal('tcp'), Type.Literal('tls')])),
  /** Port to probe instead of the service's (node-level `host` targets: default 80). */
  port: Opt(Type.Integer({ minimum: 1, maximum: 65535 })),
  path: Opt(Type.String({ pattern: '^/' })),
  method: Opt(Type.Union([Type.Literal('GET'), Type.Literal('HEAD')])),
  /** Statuses that mean up: codes or classes (`2xx`). */
  expectStatus: Opt(ExpectStatus),
  /** All must hold for the probe to pass. */
  body: Opt(Type.Array(BodyConditionSchema)),
  headers: Opt(Type.Record(Type.String({ minLength: 1 }), Type.String())),
  /** HTTP(S)/TLS: accept a self-signed certificate (default: the service's `insecureTls`). */
  insecureTls: Opt(Type.Boolean()),
  maxRedirects: Opt(Type.Integer({ minimum: 0, maximum: 10 })),
  /** TCP: the server must send this first (`SSH-` for ssh). */
  expectBanner: Opt(Type.String({ minLength: 1 })),
});
export const HealthConfigSchema = Type.Object({
  intervalMs: Ms(30_000),
  retryIntervalMs: Ms(10_000),
  timeoutMs: Ms(5000),
  failuresBeforeDown: Type.Integer({ minimum: 1, maximum: 100, default: 3 }),
  successesBeforeUp: Type.Integer({ minimum: 1, maximum: 100, default: 2 }),
  degradedLatencyMs: Ms(2000),
  /** The gateway's own HTTP edge (kind `gateway`) starts with this service: not called down before it had this long to listen. */
  startupGraceMs: Type.Integer({ minimum: 0, default: 30_000 }),
  /** Most of a response body read for body conditions; a longer body fails the probe. */
  maxBodyBytes: Type.Integer({ minimum: 256, maximum: 16 * 1024 * 1024, default: 64 * 1024 }),
  maxRedirects: Type.Integer({ minimum: 0, maximum: 10, default: 3 }),
  /** TLS probes: a certificate expiring within this many days is degraded (0: never). */
  certExpiryWarnDays: Type.Integer({ minimum: 0, default: 14 }),
  /** Publish every probe result on `health.probe.<node>.<service>` (stream HEALTH_PROBES). */
  publishProbeResults: Type.Boolean({ default: true }),
  /** Per-target settings, keyed `node/service` or `node/host`. */
  targets: Type.Record(Type.String({ pattern: '^[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*$' }), HealthTargetSchema, { default: {} }),
  /** The project's own services, found with `$SRV.PING`. */
  discovery: Type.Object({
    enabled: Type.Boolean({ default: true }),
    intervalMs: Ms(15_000),
    /** How long replies to one `$SRV.PING` are collected. */
    waitMs: Ms(500),
    /** Rounds without an answer before a service is down. */
    missedRoundsBeforeDown: Type.Integer({ minimum: 1, maximum: 100, default: 2 }),
    /** The node name these targets are listed under (`health.gateway.router`); must not be a node of the lab. */
    node: Type.String({ pattern: '^[a-z0-9][a-z0-9-]*$', default: 'gateway' }),
    /** A service silent this long is dropped from the snapshot. */
    forgetAfterMs: Ms(24 * 3600_000),
  }, { additionalProperties: false, default: {} }),
  alerts: Type.Object({
    /** Alert on degraded too (default: only down, and the recovery from it). */
    notifyDegraded: Type.Boolean({ default: false }),
    timeoutMs: Ms(5000),
    /** POSTs JSON to `url` (`HEALTH_WEBHOOK_URL`). */
    webhook: Opt(Obj({ url: Type.String({ minLength: 1 }), headers: Opt(Type.Record(Type.String({ minLength: 1 }), Type.String())) })),
    /** Publishes to `url/topic` (`NTFY_URL`, `NTFY_TOPIC`, `NTFY_TOKEN`). */
    ntfy: Opt(Obj({ url: Type.String({ minLength: 1, default: 'https://ntfy.sh' }), topic: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }), token: Opt(Type.String()) })),
  }, { additionalProperties: false, default: {} }),
}, { additionalProperties: false, default: {} });
// --- end health service ---

// --- media service ---
const MediaTargetSchema = Obj({
  /** false: not polled. */
  enabled: Opt(Type.Boolean()),
  intervalMs: Opt(Type.Integer({ minimum: 1 })),
  timeoutMs: Opt(Type.Integer({ minimum: 1 })),
});
// --- end media service ---

/** How the router chooses among candidates and recovers from failures (docs/routing.md). */
const RoutingSchema = Type.Object({
  /** `local-first`: lab backends before cloud ones, whatever the list order; `ordered`: as listed. */
  policy: Type.Union([Type.Literal('local-first'), Type.Literal('ordered')], { default: 'local-first' }),
  /** Every request stays in the lab, as if each carried `x-homelab-route: local-only`. */
  localOnly: Type.Boolean({ default: false }),
  retry: Type.Object({
    /** Tries on one backend before the next candidate (1 = no retry on the same backend). */
    attemptsPerBackend: Type.Integer({ minimum: 1, maximum: 5, default: 2 }),
    backoffMs: Type.Integer({ minimum: 0, default: 200 }),
    maxBackoffMs: Type.Integer({ minimum: 0, default: 2000 }),
    /** A `Retry-After` longer than this moves on to the next candidate instead of waiting. */
    maxRetryAfterMs: Type.Integer({ minimum: 0, default: 5000 }),
  }, { additionalProperties: false, default: {} }),
  breaker: Type.Object({
    /** Consecutive failures that open the circuit. */
    consecutiveFailures: Type.Integer({ minimum: 1, default: 5 }),
    /** Or: this share of failures among at least `minRequests` in `windowMs`. */
    failureRatio: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.5 }),
    minRequests: Type.Integer({ minimum: 1, default: 20 }),
    windowMs: Type.Integer({ minimum: 1000, default: 30_000 }),
    /** How long an open circuit stays open before one probe request is let through (half-open). */
    openMs: Type.Integer({ minimum: 100, default: 15_000 }),
  }, { additionalProperties: false, default: {} }),
  /** Longest wait for a concurrency slot. */
  queueTimeoutMs: Type.Integer({ minimum: 1, default: 10_000 }),
  /** Cloud candidates are skipped once today's estimated cloud spend (UTC day) reaches this, in USD. */
  cloudDailyBudgetUsd: Opt(Type.Number({ minimum: 0 })),
  /** USD per million tokens, by `provider/model` (a `provider/*` entry covers the rest of a provider). */
  prices: Type.Record(Type.String({ pattern: `${PROVIDER_PREFIX_PATTERN}.+` }), Type.Object({
    input: Type.Number({ minimum: 0 }),
    output: Type.Number({ minimum: 0 }),
  }, { additionalProperties: false }), { default: {} }),
}, { additionalProperties: false, default: {} });
export type RoutingConfig = Static<typeof RoutingSchema>;

/** Who may use the HTTP edge (docs/security.md). */
const AuthSchema = Type.Object({
  /** `keys`: every /v1 request needs an API key; `none`: a trusted LAN, no keys (a warning at start). `HOMELAB_AUTH` overrides. */
  mode: Type.Union([Type.Literal('keys'), Type.Literal('none')], { default: 'keys' }),
  /** Keys kept in this file (others are made with `homelab keys create` and live in the `apikeys` bucket). */
  keys: Type.Array(Type.Object({
    name: Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$' }),
    /** SHA-256 of the key, hex (`printf %s "$KEY" | sha256sum`): never the key itself. */
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    models: Opt(Type.Array(Type.String({ minLength: 1 }))),
    backends: Opt(Type.Array(KeyBackendSchema)),
    localOnly: Opt(Type.Boolean()),
    rateLimitPerMinute: Opt(Type.Integer({ minimum: 1 })),
    dailyTokens: Opt(Type.Integer({ minimum: 0 })),
    monthlyTokens: Opt(Type.Integer({ minimum: 0 })),
  }, { additionalProperties: false }), { default: [] }),
  /**
   * What a script on the NATS API may do without presenting a key of its own (`Homelab-Api-Key`),
   * when keys are on: by default local models only, never a cloud API.
   */
  scripts: Type.Object({
    models: Opt(Type.Array(Type.String({ minLength: 1 }))),
    backends: Opt(Type.Array(KeyBackendSchema)),
    localOnly: Type.Boolean({ default: true }),
    dailyTokens: Opt(Type.Integer({ minimum: 0 })),
    monthlyTokens: Opt(Type.Integer({ minimum: 0 })),
  }, { additionalProperties: false, default: {} }),
  /** Requests per minute from one client address, checked before the key (so guessing keys is slow); 0: off. */
  ipRateLimitPerMinute: Type.Integer({ minimum: 0, default: 6000 }),
  /** Origins allowed to call the API from a browser (CORS); none by default. `*` allows any. */
  corsOrigins: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
}, { additionalProperties: false, default: {} });
export type AuthConfig = Static<typeof AuthSchema>;

// --- images (services/worker-comfyui, services/router/src/images; docs/images.md) ---
/** `<node id>.<input name>` in a workflow in ComfyUI's API format, e.g. `6.text`. */
const NodeInput = Type.String({ pattern: '^[^.\\s]+\\.[A-Za-z0-9_]+$' });
const ImageMappingSchema = Obj({
  /** The positive prompt's text input (required: every model takes a prompt). */
  prompt: NodeInput,
  negativePrompt: Opt(NodeInput),
  width: Opt(NodeInput),
  height: Opt(NodeInput),
  seed: Opt(NodeInput),
  steps: Opt(NodeInput),
  /** Images per run (`n`); without it the model makes one image per request. */
  batchSize: Opt(NodeInput),
  /** The input image of image-to-image and inpainting (a LoadImage's `image`): the model serves `/v1/images/edits`. */
  image: Opt(NodeInput),
  /** The inpainting mask (a LoadImage(Mask)'s `image`). */
  mask: Opt(NodeInput),
  /** How much an edit changes its input (a KSampler's `denoise`), when a request says (`strength`). */
  denoise: Opt(NodeInput),
});
const ImageModelSchema = Obj({
  /** The workflow in ComfyUI's API format ("Export (API)"), relative to this config file. */
  workflow: Type.String({ minLength: 1 }),
  mapping: ImageMappingSchema,
  description: Opt(Type.String()),
  /** Values used when a request gives none (the workflow's own values otherwise). */
  defaults: Opt(Obj({
    width: Opt(Type.Integer({ minimum: 16, maximum: 16384 })),
    height: Opt(Type.Integer({ minimum: 16, maximum: 16384 })),
    steps: Opt(Type.Integer({ minimum: 1, maximum: 1000 })),
    negativePrompt: Opt(Type.String()),
  })),
  /** The largest width or height a request may ask (the GPU's memory decides); default 2048. */
  maxSide: Opt(Type.Integer({ minimum: 16, maximum: 16384 })),
  /** Default 150. */
  maxSteps: Opt(Type.Integer({ minimum: 1, maximum: 100_000 })),
});
const ImagesSchema = Type.Object({
  comfyui: Type.Object({
    /** `node/service` in `nodes` of kind comfyui (`COMFYUI_URL` overrides its address). */
    service: Type.String({ pattern: '^[a-z0-9-]+/[a-z0-9-]+$', default: 'ai-node/comfyui' }),
    /** Jobs the worker gives ComfyUI at once (the rest wait in the work queue, in order): the GPU decides. */
    concurrency: Type.Integer({ minimum: 1, maximum: 64, default: 1 }),
    connectTimeoutMs: Ms(5000),
    /** Longest a job may run at ComfyUI before it fails (`timeout`). */
    jobTimeoutMs: Ms(600_000),
    /** How long ComfyUI may be unreachable during a job before the job fails. */
    downTimeoutMs: Ms(60_000),
    /** A prompt that ComfyUI lost (it restarted) is submitted again this many times, then the job fails. */
    resubmitLost: Type.Integer({ minimum: 0, maximum: 5, default: 1 }),
  }, { additionalProperties: false, default: {} }),
  /** The lab's image models: each a ComfyUI workflow and the mapping of its inputs. */
  models: Type.Record(Type.String({ pattern: '^[a-z0-9][a-z0-9._-]*$' }), ImageModelSchema, { default: {} }),
  /** alias → candidates in order, `comfyui/<model>` or `openai/<model>`. */
  aliases: Type.Record(Type.String({ minLength: 1 }), Type.Array(Type.String({ pattern: '^(comfyui|openai)/.+' }), { minItems: 1 }), { default: {} }),
  /** OpenAI's image models the lab offers when OPENAI_API_KEY is set (`gpt-image-*`, `dall-e-*` route by name too). */
  cloudModels: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
  /** USD per image, by `openai/<model>` (or `openai/*`); what the image budget counts. */
  prices: Type.Record(Type.String({ pattern: '^(openai|comfyui)/.+' }), Type.Number({ minimum: 0 }), { default: {} }),
  /** Cloud images stop (local ones go on) once today's image spend (UTC day) reaches this, in USD. */
  cloudDailyBudgetUsd: Opt(Type.Number({ minimum: 0 })),
  /** Most images one request may ask for (`n`). */
  maxImagesPerRequest: Type.Integer({ minimum: 1, maximum: 16, default: 4 }),
  jobs: Type.Object({
    /** A job whose worker died is delivered again; after this many deliveries it fails. */
    maxAttempts: Type.Integer({ minimum: 1, maximum: 20, default: 3 }),
    /** A worker that stops confirming it works on a job for this long is presumed dead: the job goes to another. */
    ackWaitMs: Type.Integer({ minimum: 1000, default: 30_000 }),
    /** Job records (status, outputs) are kept this long. */
    keepHours: Type.Integer({ minimum: 1, maximum: 24 * 90, default: 72 }),
    /** The longest an HTTP request (or `images.generate`) waits for its job, queue included. */
    waitTimeoutMs: Ms(900_000),
    /** A client that hangs up: a job not started is cancelled; a running one finishes into the object store when true. */
    finishOnHangup: Type.Boolean({ default: true }),
  }, { additionalProperties: false, default: {} }),
  files: Type.Object({
    /** Generated images (object store bucket `images`) are deleted after this many hours. */
    ttlHours: Type.Integer({ minimum: 1, maximum: 24 * 365, default: 24 }),
    /** Signed `url` answers work without a key for this long (an `<img src>`). */
    urlTtlSeconds: Type.Integer({ minimum: 10, default: 3600 }),
    /** The origin in `url` answers (default: the request's own, `X-Forwarded-*` from a loopback proxy). */
    baseUrl: Opt(Type.String({ pattern: '^https?://[^/]+$' })),
  }, { additionalProperties: false, default: {} }),
}, { additionalProperties: false, default: {} });
export type ImagesConfigFile = Static<typeof ImagesSchema>;
export type ImageModelConfig = Static<typeof ImageModelSchema>;
export type ImageMapping = Static<typeof ImageMappingSchema>;
// --- end images ---

export const LabConfigSchema = Obj({
  lab: Type.Object({ name: Type.String({ default: 'homelab' }) }, { additionalProperties: false, default: {} }),
  nats: Type.Object({
    url: Type.String({ default: 'nats://127.0.0.1:4222' }),
    /** Replicas of the project's streams and KV buckets (1 for one server, 3 for a 3-node cluster). */
    replicas: Type.Integer({ minimum: 1, maximum: 5, default: 1 }),
  }, { additionalProperties: false, default: {} }),
  gateway: Type.Object({
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    host: Type.String({ default: '0.0.0.0' }),
    bodyLimitBytes: Type.Integer({ minimum: 1024, default: 4 * 1024 * 1024 }),
    /** Silence (no answer, chunk or keepalive) after which a request is given up with 504: its holder died. */
    silenceTimeoutMs: Type.Integer({ minimum: 3000, default: 10_000 }),
  }, { additionalProperties: false, default: {} }),
  nodes: Type.Record(Type.String({ pattern: '^[a-z0-9][a-z0-9-]*$' }), NodeSchema),
  inference: Type.Object({
    vllm: Opt(LocalBackendSchema),
    ollama: Opt(LocalBackendSchema),
    openai: Opt(CloudBackendSchema),
    anthropic: Opt(CloudBackendSchema),
    /** alias → ordered candidates `provider/model`; the first one available serves. */
    aliases: Type.Record(Type.String({ minLength: 1 }), Type.Array(Type.String({ pattern: `${PROVIDER_PREFIX_PATTERN}.+` }), { minItems: 1 }), { default: {} }),
    /** How often the router asks the workers which models their backends serve. */
    discoveryIntervalMs: Ms(15_000),
    /**
     * At start, how long the router waits for a backend's workers to answer its first discovery (they
     * may still be starting) before it is ready without that backend's models. A backend that is down
     * answers at once (an error) and does not hold readiness back.
     */
    firstDiscoveryWaitMs: Type.Integer({ minimum: 0, default: 10_000 }),
    /** The Responses API's stored responses (KV bucket `responses`; docs/dialects.md). */
    responses: Type.Object({
      /** A stored response is kept this many days (OpenAI keeps 30); fractions allowed (0.5 = 12 hours). */
      ttlDays: Type.Number({ exclusiveMinimum: 0, maximum: 3650, default: 30 }),
    }, { additionalProperties: false, default: {} }),
  }, { additionalProperties: false, default: {} }),
  routing: RoutingSchema,
  auth: AuthSchema,
  media: Type.Object({
    /** Storage paths watched with statfs (`MEDIA_PATHS`, comma-separated). */
    paths: Type.Array(Type.String({ minLength: 1 }), { default: ['/mnt/media', '/mnt/downloads', '/mnt/photos'] }),
    // --- media service (services/media; every key is described in docs/media.md) ---
    /** Poll interval per target kind, and of the storage check. */
    intervals: Type.Object({
      sonarr: Ms(30_000), radarr: Ms(30_000), prowlarr: Ms(300_000), qbittorrent: Ms(10_000), jellyfin: Ms(15_000), immich: Ms(300_000), storage: Ms(60_000),
    }, { additionalProperties: false, default: {} }),
    /** Per target, keyed by the service's name in `nodes` (`sonarr`, `radarr-4k`, …). */
    targets: Type.Record(Type.String({ pattern: '^[a-z0-9][a-z0-9-]*$' }), MediaTargetSchema, { default: {} }),
    /** Deadline of one HTTP request to a target, body included. */
    timeoutMs: Ms(10_000),
    /** Largest response body read from a target. */
    maxResponseBytes: Type.Integer({ minimum: 1024, default: 32 * 1024 * 1024 }),
    /** Most queue records read from one Sonarr/Radarr (all pages); beyond it the poll reports `too_large`. */
    maxQueueRecords: Type.Integer({ minimum: 1, default: 5000 }),
    queuePageSize: Type.Integer({ minimum: 1, maximum: 1000, default: 250 }),
    /** Most items (queue downloads, torrents) carried by one snapshot event. */
    snapshotMaxItems: Type.Integer({ minimum: 1, default: 500 }),
    /** A snapshot is published when it changes (progress aside), and at least this often. */
    snapshotHeartbeatMs: Ms(300_000),
    lowSpace: Type.Object({
      /** A path is low when its free share falls below this (percent of its size)… */
      freePercent: Type.Number({ minimum: 0, maximum: 100, default: 10 }),
      /** …or its free bytes below this. */
      freeBytes: Opt(Type.Integer({ minimum: 0 })),
      /** Recovered once free space is back above the threshold by this many percent points. */
      hysteresisPercent: Type.Number({ minimum: 0, maximum: 50, default: 2 }),
    }, { additionalProperties: false, default: {} }),
    webhooks: Type.Object({
      /** The receiver runs when enabled and a secret is set. */
      enabled: Type.Boolean({ default: true }),
      host: Type.String({ default: '0.0.0.0' }),
      port: Type.Integer({ minimum: 0, maximum: 65535, default: 8095 }),
      /** Shared secret (`MEDIA_WEBHOOK_SECRET`): header `X-Homelab-Secret`, or the password of Basic auth. */
      secret: Opt(Type.String({ minLength: 16 })),
      bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 8 * 1024 * 1024, default: 1024 * 1024 }),
    }, { additionalProperties: false, default: {} }),
    qbittorrent: Type.Object({
      /** Failed logins in a row after which the poller stops trying (qBittorrent bans the IP after 5 by default). */
      maxLoginFailures: Type.Integer({ minimum: 1, maximum: 10, default: 3 }),
      /** Wait after `maxLoginFailures` (or a ban) before one more login attempt. */
      loginRetryMs: Ms(3600_000),
    }, { additionalProperties: false, default: {} }),
    /** Last-state records (KV bucket `media`) expire after this many days without an update. */
    stateTtlDays: Type.Integer({ minimum: 1, maximum: 365, default: 30 }),
    // --- end media service ---
  }, { additionalProperties: false, default: {} }),
  health: HealthConfigSchema,
  images: ImagesSchema,
  // --- telemetry service (services/telemetry; docs/telemetry.md) ---
  telemetry: Type.Object({
    /** Port of the Prometheus endpoint `GET /metrics` (`METRICS_PORT`); 0 picks a free port. */
    metricsPort: Type.Integer({ minimum: 0, maximum: 65535, default: 9464 }),
    /** Listen address of `/metrics` (`METRICS_HOST`). */
    metricsHost: Type.String({ minLength: 1, default: '0.0.0.0' }),
  }, { additionalProperties: false, default: {} }),
  // --- end telemetry service ---
});

export type LabConfigFile = Static<typeof LabConfigSchema>;
export type ServiceConfig = Static<typeof ServiceSchema>;
export type LocalBackendConfig = Static<typeof LocalBackendSchema>;
export type CloudBackendConfig = Static<typeof CloudBackendSchema>;
export type HealthConfig = Static<typeof HealthConfigSchema>;
export type HealthTargetConfig = Static<typeof HealthTargetSchema>;
export type HealthBodyCondition = Static<typeof BodyConditionSchema>;
export type MediaConfig = Static<typeof LabConfigSchema>['media'];
export type MediaTargetConfig = Static<typeof MediaTargetSchema>;
export type TelemetryConfig = Static<typeof LabConfigSchema>['telemetry'];
