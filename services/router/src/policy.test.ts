import { describe, expect, it } from 'vitest';
import { planCandidates, type BackendConditions } from './policy.ts';
import { estimateCostUsd, SpendTracker } from './spend.ts';
import type { Candidate } from './resolve.ts';

const all: Candidate[] = [{ provider: 'anthropic', model: 'claude' }, { provider: 'vllm', model: 'q' }, { provider: 'ollama', model: 'l' }];
const healthy: BackendConditions = { isDown: () => false, isOpen: () => false, cloudBudgetReached: () => false };

describe('planCandidates', () => {
  it('local-first puts lab backends first, ordered keeps the list', () => {
    expect(planCandidates(all, 'local-first', false, healthy).candidates.map((c) => c.provider)).toEqual(['vllm', 'ollama', 'anthropic']);
    expect(planCandidates(all, 'ordered', false, healthy).candidates.map((c) => c.provider)).toEqual(['anthropic', 'vllm', 'ollama']);
  });

  it('local-only drops every cloud candidate, and says when nothing local is left', () => {
    const plan = planCandidates(all, 'local-first', true, healthy);
    expect(plan.candidates.map((c) => c.provider)).toEqual(['vllm', 'ollama']);
    expect(plan.skipped).toEqual(['anthropic skipped (local-only)']);
    const cloudOnly = planCandidates([{ provider: 'openai', model: 'gpt' }], 'local-first', true, healthy);
    expect(cloudOnly).toMatchObject({ candidates: [], localOnlyBlocked: true });
  });

  it('skips backends down, with an open circuit, and cloud over budget, giving reasons', () => {
    const plan = planCandidates(all, 'local-first', false, { isDown: (p) => p === 'vllm', isOpen: (p) => p === 'ollama', cloudBudgetReached: () => true });
    expect(plan.candidates).toEqual([]);
    expect(plan.skipped).toEqual(['vllm down', 'ollama circuit open', 'anthropic skipped (daily cloud budget reached)']);
    expect(plan.localOnlyBlocked).toBe(false);
  });
});

describe('spend', () => {
  const prices = { 'openai/gpt-5.4-mini': { input: 0.4, output: 1.6 }, 'anthropic/*': { input: 3, output: 15 } };
  it('estimates cost per million tokens, by model then provider wildcard', () => {
    expect(estimateCostUsd({ provider: 'openai', model: 'gpt-5.4-mini', inputTokens: 1_000_000, outputTokens: 500_000 }, prices)).toBeCloseTo(1.2);
    expect(estimateCostUsd({ provider: 'anthropic', model: 'claude-x', inputTokens: 1000, outputTokens: 1000 }, prices)).toBeCloseTo(0.018);
    expect(estimateCostUsd({ provider: 'openai', model: 'unpriced', inputTokens: 1e6 }, prices)).toBe(0);
  });
  it('sums today\'s cloud spend only, and starts over at midnight UTC', () => {
    let now = Date.parse('2026-11-27T23:00:00Z');
    const t = new SpendTracker(prices, () => now);
    t.add({ provider: 'anthropic', model: 'c', inputTokens: 1e6 }, '2026-11-27T10:00:00Z');
    t.add({ provider: 'anthropic', model: 'c', inputTokens: 1e6 }, '2026-11-26T10:00:00Z'); // yesterday
    t.add({ provider: 'vllm', model: 'q', inputTokens: 1e9 }, '2026-11-27T10:00:00Z'); // local: free
    expect(t.spentTodayUsd).toBeCloseTo(3);
    expect(t.startOfDay().toISOString()).toBe('2026-11-27T00:00:00.000Z');
    now = Date.parse('2026-11-28T00:00:01Z');
    expect(t.spentTodayUsd).toBe(0);
  });
});
