import { describe, expect, it } from 'vitest';
import { faultsByService, inFlightByProvider } from './inflight.ts';

describe('inFlightByProvider', () => {
  it('sums each backend\'s generate endpoints over its worker replicas, ignoring other services and endpoints', () => {
    const totals = inFlightByProvider([
      { name: 'worker-vllm', endpoints: [{ name: 'vllm-generate', data: { in_flight: 3 } }, { name: 'vllm-models' }] },
      { name: 'worker-vllm', endpoints: [{ name: 'vllm-generate', data: { in_flight: 2 } }] },
      { name: 'worker-cloud', endpoints: [{ name: 'openai-generate', data: { in_flight: 0 } }, { name: 'anthropic-generate', data: { in_flight: 1 } }] },
      { name: 'router', endpoints: [{ name: 'chat' }, { name: 'keys-create' }] },
      { name: 'weird', endpoints: [{ name: 'bogus-generate', data: { in_flight: 9 } }, { name: 'ollama-generate', data: { in_flight: 'x' } }] },
    ]);
    expect(Object.fromEntries(totals)).toEqual({ vllm: 5, openai: 0, anthropic: 1, ollama: 0 });
  });
});

describe('faultsByService', () => {
  it('sums each service\'s escaped faults over its replicas, ignoring replies without a name', () => {
    expect(Object.fromEntries(faultsByService([
      { name: 'router', data: { faults: 1 } }, { name: 'router', data: { faults: 2 } }, { name: 'ingress', data: {} }, { data: { faults: 9 } },
    ]))).toEqual({ router: 3, ingress: 0 });
  });
});
