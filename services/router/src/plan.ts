import { GatewayError, keyAllowsModel, type KeyRecord } from '@homelab/bus';
import { isCloudProvider, type LabConfig, type Provider } from '@homelab/config';
import { planCandidates, type BackendConditions } from './policy.ts';
import { canonicalModelName, resolveModel, type Candidate, type ModelView } from './resolve.ts';

/** What the router knows when it plans a request: the lab, and the state of its backends now. */
export interface PlanContext {
  config: Pick<LabConfig, 'aliases' | 'backends' | 'routing'>;
  models: ModelView;
  conditions: BackendConditions;
  /** The cloud budget a key has used up now, if any. */
  budgetSpent(key: KeyRecord): 'daily' | 'monthly' | undefined;
  /** How long until an open circuit lets a probe through (a hint for the client's retry). */
  retryInMs(provider: Provider): number | undefined;
}

export interface PlanRequest {
  model: string;
  /** The key the request came with (none when the lab runs without keys). */
  key: KeyRecord | undefined;
  /** The request, its key (`localOnly`) or the lab must stay inside the lab. */
  localOnly: boolean;
}

/** The backends to try, in order, and why; or why the request cannot be placed anywhere. */
export type Plan =
  | { ok: true; candidates: Candidate[]; route: string[] }
  | { ok: false; error: GatewayError; route: string[] };

/**
 * Plans one request, without side effects: the key's scope (its models, its backends, its cloud
 * budget), the model's resolution (explicit, alias, discovered, cloud), then the routing policy
 * (local-first, local-only, backends down, open circuits, the daily cloud budget). The result is
 * the ordered candidates for the attempt loop, or the error the client gets.
 */
export function planRequest(request: PlanRequest, context: PlanContext): Plan {
  const { key } = request;
  // `smart:latest` is `smart` (Ollama's clients tag every name): for the key's scope and the resolution alike.
  const model = canonicalModelName(request.model, context.config, context.models);
  if (key && !keyAllowsModel(key, model)) {
    return refuse(new GatewayError('forbidden', `key '${key.name}' may not use the model '${model}'`, { param: 'model' }), []);
  }
  let resolution;
  try {
    resolution = resolveModel(model, context.config, context.models);
  } catch (err) {
    return refuse(err as GatewayError, []);
  }
  const scope = keyScope(key, resolution.candidates, context);
  const policy = planCandidates(scope.candidates, context.config.routing.policy, request.localOnly, context.conditions);
  const route = [resolution.reason, ...resolution.skipped, ...scope.skipped, ...policy.skipped];

  if (policy.localOnlyBlocked) {
    return refuse(new GatewayError('no_backend', `local-only: no local backend serves '${model}'; the request was not sent to a cloud API`, { param: 'model' }), route);
  }
  if (policy.candidates.length === 0 && scope.budget && key) {
    const limit = scope.budget === 'daily' ? key.dailyTokens : key.monthlyTokens;
    return refuse(new GatewayError('budget_exceeded', `the ${scope.budget} cloud token budget of key '${key.name}' (${limit} tokens) is used up; local models are still served if the key allows them`), route);
  }
  if (scope.candidates.length === 0) {
    return refuse(new GatewayError('forbidden', `key '${key?.name}' may not use the backends that serve '${model}'`, { param: 'model' }), route);
  }
  if (policy.candidates.length === 0) {
    const retryIn = Math.min(...resolution.candidates.map((c) => context.retryInMs(c.provider) || Infinity));
    return refuse(new GatewayError('no_backend', `no backend for '${model}' is available now (${policy.skipped.join(', ')})`, {
      ...(Number.isFinite(retryIn) && { retryAfterMs: retryIn }),
    }), route);
  }
  return { ok: true, candidates: policy.candidates, route };
}

function refuse(error: GatewayError, route: string[]): Plan {
  return { ok: false, error, route };
}

/** A key's backends, and its cloud budget: cloud candidates are dropped once the budget is spent. */
function keyScope(key: KeyRecord | undefined, candidates: Candidate[], context: PlanContext): { candidates: Candidate[]; skipped: string[]; budget?: 'daily' | 'monthly' } {
  if (!key) return { candidates, skipped: [] };
  const skipped: string[] = [];
  const budget = context.budgetSpent(key);
  const kept = candidates.filter((c) => {
    if (key.backends && !key.backends.includes(c.provider)) { skipped.push(`${c.provider} not allowed for key`); return false; }
    if (budget && isCloudProvider(c.provider)) { skipped.push(`${c.provider} skipped (${budget} budget of key ${key.name} reached)`); return false; }
    return true;
  });
  const budgetBlocked = budget !== undefined && kept.length === 0 && candidates.some((c) => isCloudProvider(c.provider));
  return { candidates: kept, skipped, ...(budgetBlocked && { budget }) };
}
