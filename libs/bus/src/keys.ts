import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { Type, type Static } from '@sinclair/typebox';
import type { Logger } from '@homelab/logging';
import { KeyBackendSchema } from '@homelab/config';
import { createKvBucket, retryJetStreamApi } from './jetstream-api.ts';
import { validator } from './schemas.ts';

/*
 * API keys of the HTTP edge. A key is `hlk_` + 32 random bytes (base64url): high entropy, so a
 * plain SHA-256 is the right hash (a slow password hash would only slow every request). Only the
 * hash is stored: in the lab's config (`auth.keys`) or in the KV bucket `apikeys` (`homelab keys`).
 */

export const APIKEYS_BUCKET = 'apikeys';
export const USAGE_BUCKET = 'usage';

const Name = Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$' });

/** What a key may do. The same fields in config (`auth.keys`) and in the bucket. */
export const KeyPolicySchema = Type.Object({
  /** Models and aliases the key may ask for (`*` at the end matches a prefix, e.g. `ollama/*`); none = all. */
  models: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  /** Backends the key may use; none = all. */
  backends: Type.Optional(Type.Array(KeyBackendSchema)),
  /** Requests of this key never leave the lab. */
  localOnly: Type.Optional(Type.Boolean()),
  /** Requests per minute (all ingress replicas together). */
  rateLimitPerMinute: Type.Optional(Type.Integer({ minimum: 1 })),
  /** Cloud tokens (input + output) per UTC day / calendar month; past it, cloud backends are skipped. */
  dailyTokens: Type.Optional(Type.Integer({ minimum: 0 })),
  monthlyTokens: Type.Optional(Type.Integer({ minimum: 0 })),
}, { additionalProperties: false });
export type KeyPolicy = Static<typeof KeyPolicySchema>;

/** One key as stored in the `apikeys` bucket, under its name. */
export const KeyRecordSchema = Type.Composite([KeyPolicySchema, Type.Object({
  name: Name,
  /** SHA-256 of the key, hex. */
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  createdAt: Type.String(),
  revokedAt: Type.Optional(Type.String()),
})], { additionalProperties: false });
export type KeyRecord = Static<typeof KeyRecordSchema>;
const checkRecord = validator(KeyRecordSchema);

/** The usage ledger: cloud tokens per key per day and month, in the `usage` bucket. */
export const KeyUsageSchema = Type.Object({ cloudTokens: Type.Integer({ minimum: 0 }), requests: Type.Integer({ minimum: 0 }) }, { additionalProperties: false });
export type KeyUsage = Static<typeof KeyUsageSchema>;

/** `keys.create` request, and its reply (the key, shown once). */
export const KeyCreateSchema = Type.Composite([KeyPolicySchema, Type.Object({ name: Name })], { additionalProperties: false });
export type KeyCreate = Static<typeof KeyCreateSchema>;
export const KeyRevokeSchema = Type.Object({ name: Name }, { additionalProperties: false });

export function newApiKey(): string {
  return `hlk_${randomBytes(32).toString('base64url')}`;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Usage ledger keys: `<name>.day.2026-11-27`, `<name>.month.2026-11`. */
export function usageKeys(name: string, at: Date = new Date()): { day: string; month: string } {
  const iso = at.toISOString();
  return { day: `${name}.day.${iso.slice(0, 10)}`, month: `${name}.month.${iso.slice(0, 7)}` };
}

/** Whether a key's policy allows the model the client asked for (the name as asked: alias, bare or `provider/model`). */
export function keyAllowsModel(policy: KeyPolicy, model: string): boolean {
  if (!policy.models) return true;
  return policy.models.some((m) => (m.endsWith('*') ? model.startsWith(m.slice(0, -1)) : m === model));
}

export async function openKeyBuckets(nc: NatsConnection, replicas: number, create: boolean): Promise<{ keys: KV; usage: KV }> {
  const open = (name: string, description: string): Promise<KV> => (create
    ? createKvBucket(nc, name, { replicas, history: 1, description })
    : retryJetStreamApi(() => new Kvm(nc).open(name, { allow_direct: true } as never)));
  return {
    keys: await open(APIKEYS_BUCKET, 'API keys of the edge: one record (hash, never the key) per name'),
    usage: await open(USAGE_BUCKET, 'Cloud token usage per API key per day and month'),
  };
}

/**
 * Every key the edge accepts: the config's, then the bucket's, kept current by a watch so a new or
 * revoked key takes effect on every replica as soon as the bucket changes. Lookups hash the
 * presented key and compare digests, so the time taken does not depend on whether a key exists.
 */
export class KeyRegistry {
  readonly #byHash = new Map<string, KeyRecord>();
  readonly #byName = new Map<string, KeyRecord>();
  readonly #fromConfig = new Set<string>();
  #stopWatch: (() => void) | undefined;

  constructor(configKeys: readonly KeyRecord[] = []) {
    for (const record of configKeys) {
      this.#fromConfig.add(record.name);
      this.#put(record);
    }
  }

  /** The key's record, or undefined for a missing, unknown or revoked key. */
  authenticate(presented: string | undefined): KeyRecord | undefined {
    const digest = hashApiKey(presented ?? '');
    const record = this.#byHash.get(digest);
    // The map lookup already matched; comparing digests keeps the check constant-time by construction.
    if (!record || !timingSafeEqual(Buffer.from(record.sha256, 'hex'), Buffer.from(digest, 'hex'))) return undefined;
    return record.revokedAt ? undefined : record;
  }

  byName(name: string): KeyRecord | undefined {
    const record = this.#byName.get(name);
    return record && !record.revokedAt ? record : undefined;
  }

  list(): KeyRecord[] {
    return [...this.#byName.values()];
  }

  get size(): number {
    return this.#byName.size;
  }

  /** Whether this registry follows the `apikeys` bucket: only then can a key made with `homelab keys` take effect. */
  get following(): boolean {
    return this.#stopWatch !== undefined;
  }

  /** Follows the `apikeys` bucket (history first, then every change) until `stop`. */
  async watch(kv: KV, log: Logger): Promise<void> {
    const iter = await kv.watch();
    this.#stopWatch = () => iter.stop();
    void (async () => {
      for await (const entry of iter) {
        if (this.#fromConfig.has(entry.key)) continue; // config keys are managed in the file
        if (entry.operation !== 'PUT') { this.#remove(entry.key); continue; }
        let value: unknown;
        try { value = entry.json(); } catch { value = undefined; }
        if (checkRecord.check(value) && value.name === entry.key) this.#put(value);
        else log.warn({ key: entry.key }, 'invalid API key record ignored');
      }
    })();
  }

  stop(): void {
    this.#stopWatch?.();
  }

  #put(record: KeyRecord): void {
    this.#remove(record.name);
    this.#byName.set(record.name, record);
    this.#byHash.set(record.sha256, record);
  }

  #remove(name: string): void {
    const old = this.#byName.get(name);
    if (!old) return;
    this.#byName.delete(name);
    if (this.#byHash.get(old.sha256) === old) this.#byHash.delete(old.sha256);
  }
}
