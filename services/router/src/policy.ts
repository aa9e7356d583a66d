import { LOCAL_PROVIDERS, type Provider, type RoutingConfig } from '@homelab/config';
import type { Candidate } from './resolve.ts';

/** What the router knows about each backend now, for choosing among candidates. */
export interface BackendConditions {
  /** The health service reports the backend down. */
  isDown(provider: Provider): boolean;
  /** The backend's circuit is open (a half-open one still takes its probe). */
  isOpen(provider: Provider): boolean;
  /** Today's cloud spend reached the configured ceiling. */
  cloudBudgetReached(): boolean;
}

export interface Plan {
  candidates: Candidate[];
  /** Why candidates were left out, in order, for the route reason. */
  skipped: string[];
  /** Every candidate was cloud and the request is local-only. */
  localOnlyBlocked: boolean;
}

export const isLocal = (p: Provider): boolean => (LOCAL_PROVIDERS as readonly Provider[]).includes(p);

/**
 * Orders and filters the resolved candidates: `local-first` puts lab backends before cloud ones
 * (keeping each group's order); local-only drops cloud candidates; backends reported down, with an
 * open circuit, or (cloud) over today's budget are skipped, each with its reason.
 */
export function planCandidates(candidates: readonly Candidate[], policy: RoutingConfig['policy'], localOnly: boolean, conditions: BackendConditions): Plan {
  const ordered = policy === 'local-first'
    ? [...candidates.filter((c) => isLocal(c.provider)), ...candidates.filter((c) => !isLocal(c.provider))]
    : [...candidates];
  const plan: Candidate[] = [];
  const skipped: string[] = [];
  let cloudDropped = 0;
  for (const c of ordered) {
    if (!isLocal(c.provider)) {
      if (localOnly) { cloudDropped++; skipped.push(`${c.provider} skipped (local-only)`); continue; }
      if (conditions.cloudBudgetReached()) { skipped.push(`${c.provider} skipped (daily cloud budget reached)`); continue; }
    }
    if (conditions.isDown(c.provider)) { skipped.push(`${c.provider} down`); continue; }
    if (conditions.isOpen(c.provider)) { skipped.push(`${c.provider} circuit open`); continue; }
    plan.push(c);
  }
  return { candidates: plan, skipped, localOnlyBlocked: localOnly && cloudDropped === ordered.length };
}
