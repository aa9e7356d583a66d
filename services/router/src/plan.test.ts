import { describe, expect, it } from 'vitest';
import type { KeyRecord } from '@homelab/bus';
import { parseConfig, type Provider } from '@homelab/config';
import { planRequest, type PlanContext } from './plan.ts';

const config = parseConfig(`
nodes:
  ai-node:
    address: 127.0.0.1
    services: { vllm: { kind: vllm, port: 8000 }, ollama: { kind: ollama, port: 11434 } }
inference:
  vllm: { service: ai-node/vllm }
  ollama: { service: ai-node/ollama }
  openai: { baseURL: "http://127.0.0.1:1/v1", apiKey: sk-x, models: [gpt-5.4-mini] }
  anthropic: { baseURL: "http://127.0.0.1:2", apiKey: sk-y, models: [claude-haiku-5-5] }
  aliases:
    smart: [vllm/*, ollama/qwen2.5:7b, anthropic/claude-haiku-5-5]
    cloud: [openai/gpt-5.4-mini]
`, 'lab.yaml', {});

const served: Partial<Record<Provider, { id: string }[]>> = { vllm: [{ id: 'Qwen/Qwen2.5-7B-Instruct' }], ollama: [{ id: 'qwen2.5:7b' }] };

function context(over: Partial<PlanContext['conditions']> & { budget?: 'daily' | 'monthly'; retryInMs?: number } = {}): PlanContext {
  return {
    config, models: { served: (p) => served[p] },
    conditions: { isDown: () => false, isOpen: () => false, cloudBudgetReached: () => false, ...over },
    budgetSpent: () => over.budget,
    retryInMs: () => over.retryInMs,
  };
}

const key = (over: Partial<KeyRecord> = {}): KeyRecord => ({ name: 'laptop', sha256: 'x', createdAt: 'config', ...over });
const providers = (plan: ReturnType<typeof planRequest>): string[] => (plan.ok ? plan.candidates.map((c) => c.provider) : []);

describe('planRequest', () => {
  it('an alias: local first, cloud last, with the route reason', () => {
    const plan = planRequest({ model: 'smart', key: undefined, localOnly: false }, context());
    expect(providers(plan)).toEqual(['vllm', 'ollama', 'anthropic']);
    expect(plan.route).toEqual(['alias:smart']);
  });

  it('local-only drops the cloud, and refuses a cloud-only model without sending it anywhere', () => {
    expect(providers(planRequest({ model: 'smart', key: undefined, localOnly: true }, context()))).toEqual(['vllm', 'ollama']);
    const refused = planRequest({ model: 'cloud', key: undefined, localOnly: true }, context());
    expect(refused).toMatchObject({ ok: false, error: { code: 'no_backend', message: expect.stringContaining('local-only') as string } });
  });

  it('a key may be limited to models and backends', () => {
    expect(planRequest({ model: 'smart', key: key({ models: ['fast'] }), localOnly: false }, context())).toMatchObject({ ok: false, error: { code: 'forbidden', param: 'model' } });
    const ollamaOnly = planRequest({ model: 'smart', key: key({ backends: ['ollama'] }), localOnly: false }, context());
    expect(providers(ollamaOnly)).toEqual(['ollama']);
    expect(ollamaOnly.route).toEqual(['alias:smart', 'vllm not allowed for key', 'anthropic not allowed for key']);
    expect(planRequest({ model: 'cloud', key: key({ backends: ['vllm'] }), localOnly: false }, context())).toMatchObject({ ok: false, error: { code: 'forbidden' } });
  });

  it('a name with Ollama\'s :latest tag plans as the lab\'s name, for the key\'s scope too', () => {
    const plan = planRequest({ model: 'smart:latest', key: key({ models: ['smart'] }), localOnly: false }, context());
    expect(providers(plan)).toEqual(['vllm', 'ollama', 'anthropic']);
    expect(plan.route).toEqual(['alias:smart']);
    expect(providers(planRequest({ model: 'gpt-5.4-mini:latest', key: undefined, localOnly: false }, context()))).toEqual(['openai']);
    expect(planRequest({ model: 'gpt-5.4-mini:latest', key: undefined, localOnly: false }, context())).toMatchObject({ candidates: [{ model: 'gpt-5.4-mini' }] });
  });

  it('a key whose cloud budget is spent keeps its local models; a cloud-only model is budget_exceeded', () => {
    const spent = context({ budget: 'daily' });
    expect(providers(planRequest({ model: 'smart', key: key({ dailyTokens: 10 }), localOnly: false }, spent))).toEqual(['vllm', 'ollama']);
    const refused = planRequest({ model: 'cloud', key: key({ dailyTokens: 10 }), localOnly: false }, spent);
    expect(refused).toMatchObject({ ok: false, error: { code: 'budget_exceeded', status: 429, message: expect.stringContaining('daily cloud token budget') as string } });
  });

  it('backends down or with an open circuit are skipped; none left is no_backend with a retry hint', () => {
    const down = planRequest({ model: 'smart', key: undefined, localOnly: false }, context({ isDown: (p) => p === 'vllm', isOpen: (p) => p === 'ollama' }));
    expect(providers(down)).toEqual(['anthropic']);
    expect(down.route).toEqual(['alias:smart', 'vllm down', 'ollama circuit open']);
    const none = planRequest({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', key: undefined, localOnly: false }, context({ isOpen: () => true, retryInMs: 7000 }));
    expect(none).toMatchObject({ ok: false, error: { code: 'no_backend', retryAfterMs: 7000 } });
  });

  it('an unknown model is model_not_found, before any backend is considered', () => {
    expect(planRequest({ model: 'mystery', key: undefined, localOnly: false }, context())).toMatchObject({ ok: false, error: { code: 'model_not_found', status: 404 }, route: [] });
  });

  it('the daily cloud budget of the lab skips cloud candidates', () => {
    const plan = planRequest({ model: 'smart', key: undefined, localOnly: false }, context({ cloudBudgetReached: () => true }));
    expect(providers(plan)).toEqual(['vllm', 'ollama']);
    expect(plan.route.at(-1)).toBe('anthropic skipped (daily cloud budget reached)');
  });
});
