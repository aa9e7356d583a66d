import { PROVIDERS as ALL_PROVIDERS } from '@homelab/config';
import { OTHER } from './semconv.ts';

/**
 * Keeps one label's values bounded: the first `max` distinct values pass as they are, every later
 * one becomes `_other`. Values that are admitted only on good evidence (a model that actually
 * served a request) can be checked with `admit = false`: known values pass, unknown ones become
 * `_other` without taking a place. Cost per call: one Set lookup.
 */
export class LabelBudget {
  readonly #max: number;
  readonly #maxLength: number;
  readonly #known = new Set<string>();

  constructor(max: number, options: { seed?: Iterable<string>; maxLength?: number } = {}) {
    this.#max = max;
    this.#maxLength = options.maxLength ?? 128;
    for (const v of options.seed ?? []) this.#known.add(v);
  }

  value(value: string | undefined | null, admit = true): string {
    if (value === undefined || value === null || value === '') return OTHER;
    if (this.#known.has(value)) return value;
    if (!admit || this.#known.size >= this.#max || value.length > this.#maxLength) return OTHER;
    this.#known.add(value);
    return value;
  }

  get size(): number {
    return this.#known.size;
  }
}

const PROVIDERS: ReadonlySet<string> = new Set(ALL_PROVIDERS);
const ROUTE_KINDS = new Set(['alias', 'explicit', 'discovered', 'configured', 'prefix', 'rejected']);

/** Route reasons of candidates left out (not attempts), as the router writes them, and their label. */
const SKIPS: Record<string, string> = {
  'not configured': 'not_configured',
  'serves no model now': 'no_model',
  'skipped (local-only)': 'local_only',
  'skipped (daily cloud budget reached)': 'budget',
  down: 'down',
  'circuit open': 'circuit_open',
  'rate limited': 'rate_limited',
  saturated: 'saturated',
};

/** Failures the router spells in words rather than as an error code. */
const FAILURE_WORDS: Record<string, string> = {
  'no worker': 'no_worker',
  'first-token timeout': 'timeout',
};

const CODE = /^[a-z][a-z_]{0,39}$/;

export interface RouteAttempt {
  provider: string;
  /** Why it failed (a bounded code); undefined for the attempt that answered. */
  failure?: string;
}

export interface ParsedRoute {
  /** alias, explicit, discovered, configured, prefix, rejected, or unknown. */
  kind: string;
  /** Attempts in order; the last one answered when the request succeeded. */
  attempts: RouteAttempt[];
  /** Candidates left out: provider and why. */
  skips: { provider: string; reason: string }[];
}

/**
 * Reads the router's free-form route reason (`alias:smart > vllm backend_unavailable > vllm >
 * ollama`, docs/subjects.md) into bounded pieces: how the model was resolved, each attempt and
 * why it failed, each candidate skipped. The raw string never becomes a label.
 */
export function parseRoute(reason: string): ParsedRoute {
  const parts = reason.split(' > ');
  const head = parts[0] ?? '';
  const colon = head.indexOf(':');
  const kindToken = colon >= 0 ? head.slice(0, colon) : head;
  const kind = ROUTE_KINDS.has(kindToken) ? kindToken : 'unknown';
  const attempts: RouteAttempt[] = [];
  const skips: ParsedRoute['skips'] = [];
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i]!;
    const space = part.indexOf(' ');
    const provider = space < 0 ? part : part.slice(0, space);
    if (!PROVIDERS.has(provider)) continue; // e.g. `local-only`
    if (space < 0) { attempts.push({ provider }); continue; }
    const rest = part.slice(space + 1);
    const skip = SKIPS[rest];
    if (skip) { skips.push({ provider, reason: skip }); continue; }
    attempts.push({ provider, failure: FAILURE_WORDS[rest] ?? (CODE.test(rest) ? rest : OTHER) });
  }
  return { kind, attempts, skips };
}
