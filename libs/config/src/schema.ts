import { Type, type Static, type TSchema } from '@sinclair/typebox';

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
});

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
  }, { additionalProperties: false, default: {} }),
  nodes: Type.Record(Type.String({ pattern: '^[a-z0-9][a-z0-9-]*$' }), NodeSchema),
  inference: Type.Object({
    vllm: Opt(LocalBackendSchema),
    ollama: Opt(LocalBackendSchema),
    openai: Opt(CloudBackendSchema),
    anthropic: Opt(CloudBackendSchema),
    /** alias → ordered candidates `provider/model`; the first one available serves. */
    aliases: Type.Record(Type.String({ minLength: 1 }), Type.Array(Type.String({ pattern: '^(vllm|ollama|openai|anthropic)/.+' }), { minItems: 1 }), { default: {} }),
    /** How often the router asks the workers which models their backends serve. */
    discoveryIntervalMs: Ms(15_000),
  }, { additionalProperties: false, default: {} }),
  media: Type.Object({
    /** Storage paths watched with statfs (`MEDIA_PATHS`, comma-separated). */
    paths: Type.Array(Type.String({ minLength: 1 }), { default: ['/mnt/media', '/mnt/downloads', '/mnt/photos'] }),
  }, { additionalProperties: false, default: {} }),
});

export type LabConfigFile = Static<typeof LabConfigSchema>;
export type ServiceConfig = Static<typeof ServiceSchema>;
export type LocalBackendConfig = Static<typeof LocalBackendSchema>;
export type CloudBackendConfig = Static<typeof CloudBackendSchema>;
