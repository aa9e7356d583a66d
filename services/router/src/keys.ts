import type { KV } from '@nats-io/kv';
import type { KeyRegistry} from '@homelab/bus';
import {
  GatewayError, KeyUsageSchema, Subjects, consumeEvents, hashApiKey, newApiKey, usageKeys, validator,
  H, type InferenceCompleted, type KeyCreate, type KeyRecord, type KeyUsage, type MsgHeaders, type NatsConnection,
} from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import { isCloudProvider } from '@homelab/config';

const checkUsage = validator(KeyUsageSchema);
const encoder = new TextEncoder();

/**
 * Cloud token usage of every key, from the `usage` bucket (kept current by a watch): what the
 * router reads to decide whether a key's daily or monthly cloud budget is spent.
 */
export class UsageBook {
  readonly #entries = new Map<string, KeyUsage>();
  #stop: (() => void) | undefined;

  get(key: string): KeyUsage {
    return this.#entries.get(key) ?? { cloudTokens: 0, requests: 0 };
  }

  /** The budget a key has used up now, if any: `daily` or `monthly`. */
  exhausted(record: KeyRecord, at = new Date()): 'daily' | 'monthly' | undefined {
    const { day, month } = usageKeys(record.name, at);
    if (record.dailyTokens !== undefined && this.get(day).cloudTokens >= record.dailyTokens) return 'daily';
    if (record.monthlyTokens !== undefined && this.get(month).cloudTokens >= record.monthlyTokens) return 'monthly';
    return undefined;
  }

  async watch(kv: KV): Promise<void> {
    const iter = await kv.watch();
    this.#stop = () => iter.stop();
    void (async () => {
      for await (const e of iter) {
        if (e.operation !== 'PUT') { this.#entries.delete(e.key); continue; }
        try { this.#entries.set(e.key, checkUsage.parse(e.json())); } catch { /* an entry of another shape: ignored */ }
      }
    })();
  }

  stop(): void {
    this.#stop?.();
  }
}

/**
 * The usage ledger: every finished cloud request of a key adds its tokens to the key's day and month
 * in the `usage` bucket. All router replicas share one durable consumer, so each event is counted
 * once; compare-and-set updates keep concurrent writers from losing a count.
 */
export async function followLedger(nc: NatsConnection, usage: KV, log: Logger): Promise<{ stop(): Promise<void> }> {
  return consumeEvents({
    nc, log, stream: 'INFERENCE', durable: 'router-ledger', filterSubjects: [Subjects.inferenceCompleted.subject],
    handler: async (_subject, payload) => {
      const event = payload as InferenceCompleted;
      if (!event.apiKey || !isCloudProvider(event.backend)) return;
      const tokens = (event.inputTokens ?? 0) + (event.outputTokens ?? 0);
      const { day, month } = usageKeys(event.apiKey, new Date(event.finishedAt));
      for (const key of [day, month]) await addUsage(usage, key, tokens);
    },
  });
}

/** Adds one request's cloud tokens to a ledger entry (compare-and-set, retried when another writer got there first). */
export async function addUsage(kv: KV, key: string, tokens: number): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const entry = await kv.get(key);
    const current: KeyUsage = entry && entry.operation === 'PUT' ? checkUsage.parse(entry.json()) : { cloudTokens: 0, requests: 0 };
    const next = encoder.encode(JSON.stringify({ cloudTokens: current.cloudTokens + tokens, requests: current.requests + 1 }));
    try {
      if (entry && entry.operation === 'PUT') await kv.update(key, next, entry.revision);
      else await kv.create(key, next);
      return;
    } catch {
      // Another writer got there first: read again.
    }
  }
  throw new GatewayError('internal_error', `could not update usage ${key}`);
}

/** `keys.create`: a new key, stored as its hash; the key itself is in the reply only, once. */
export async function createKey(kv: KV, registry: KeyRegistry, request: KeyCreate): Promise<{ name: string; key: string; record: Omit<KeyRecord, 'sha256'> }> {
  requireKeysOn(registry, 'a key made now would do nothing');
  if (registry.byName(request.name)) throw new GatewayError('invalid_request', `a key named '${request.name}' exists; revoke it first`, { param: 'name' });
  // Keyless scripts are accounted as `scripts` (their stored responses, their usage): a key of that name would share them.
  if (request.name === SCRIPTS_SCOPE_NAME) throw new GatewayError('invalid_request', `'${SCRIPTS_SCOPE_NAME}' is the name of what scripts without a key may do (auth.scripts): choose another name`, { param: 'name' });
  const key = newApiKey();
  const record: KeyRecord = { ...request, sha256: hashApiKey(key), createdAt: new Date().toISOString() };
  await kv.put(request.name, encoder.encode(JSON.stringify(record)));
  const { sha256: _hidden, ...shown } = record;
  return { name: request.name, key, record: shown };
}

/** `keys.revoke`: marks the key revoked; every ingress replica watching the bucket refuses it within moments. */
export async function revokeKey(kv: KV, registry: KeyRegistry, name: string): Promise<{ name: string; revokedAt: string }> {
  requireKeysOn(registry, 'no key is checked, so there is nothing to revoke');
  const record = registry.byName(name);
  if (!record) throw new GatewayError('not_found', `no active key named '${name}'`, { param: 'name' });
  if (record.createdAt === 'config') throw new GatewayError('invalid_request', `'${name}' is defined in the lab's config file: remove it there`, { param: 'name' });
  const revoked: KeyRecord = { ...record, revokedAt: new Date().toISOString() };
  await kv.put(name, encoder.encode(JSON.stringify(revoked)));
  return { name, revokedAt: revoked.revokedAt! };
}

/**
 * With `auth: none` the router does not follow the key bucket (main.ts): keys are neither checked nor
 * seen, so making or revoking one would silently do nothing. Say so instead.
 */
function requireKeysOn(registry: KeyRegistry, why: string): void {
  if (!registry.following) {
    throw new GatewayError('invalid_request', `API keys are off in this lab (auth.mode: none, or HOMELAB_AUTH=none): ${why}. Turn them on with auth.mode: keys in the lab's config.`);
  }
}

/** `keys.list`: names, scopes and usage; never a key or its hash. `auth: none` when keys are off (nothing listed takes effect). */
export function listKeys(registry: KeyRegistry, usage: UsageBook, at = new Date()): { auth: 'keys' | 'none'; keys: Record<string, unknown>[] } {
  return {
    auth: registry.following ? 'keys' : 'none',
    keys: registry.list().map(({ sha256: _hidden, ...record }) => {
      const { day, month } = usageKeys(record.name, at);
      return { ...record, usage: { today: usage.get(day), month: usage.get(month) } };
    }),
  };
}

/**
 * The key a request presented (the ingress passes the client's; a script may present its own),
 * verified here as the ingress does: nobody can act as a key they do not hold. Without one, a
 * script gets the scope the lab gives scripts (`auth.scripts`). No keys when the lab runs without them.
 */
export function keyOfRequest(headers: MsgHeaders | undefined, registry: KeyRegistry | undefined, scriptsScope: KeyRecord): KeyRecord | undefined {
  if (!registry) return undefined;
  const presented = headers?.get(H.apiKey);
  if (!presented) return scriptsScope;
  const key = registry.authenticate(presented);
  if (!key) throw new GatewayError('invalid_api_key', 'the API key presented is not valid (revoked?)');
  return key;
}

/** What a script that presents no key may do (keys on): the lab's `auth.scripts`, as a key record named `scripts`. */
export function scriptsScopeOf(config: Pick<LabConfig, 'auth'>): KeyRecord {
  return { name: SCRIPTS_SCOPE_NAME, sha256: '', createdAt: 'config', ...config.auth.scripts };
}

/** The name under which keyless scripts are accounted; no key may take it. */
export const SCRIPTS_SCOPE_NAME = 'scripts';
