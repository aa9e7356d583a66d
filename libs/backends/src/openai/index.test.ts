import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '@homelab/bus';
import { simText, startOpenAISimulator, type Simulator } from '@homelab/simulators';
import type { ChatCall, ChatChunk } from '../types.ts';
import { createOpenAIBackend } from './index.ts';

let sim: Simulator | undefined;
afterEach(async () => { await sim?.close(); sim = undefined; });

const KEY = 'sk-proj-lab-0123456789';

function call(): ChatCall {
  return { request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }] }, requestId: 'r', signal: new AbortController().signal };
}

describe('OpenAI backend', () => {
  it('lists the configured models without a request', async () => {
    sim = await startOpenAISimulator({ flavor: 'openai', models: ['gpt-4o-mini'] });
    const backend = createOpenAIBackend({ baseURL: `${sim.url}/v1`, apiKey: KEY, models: ['gpt-4o-mini', 'gpt-4.1'] });
    expect(backend.provider).toBe('openai');
    expect(await backend.listModels(new AbortController().signal)).toEqual([{ id: 'gpt-4o-mini' }, { id: 'gpt-4.1' }]);
    expect(sim.requests).toHaveLength(0);
  });

  it('chats and streams against the OpenAI wire format with the bearer key', async () => {
    sim = await startOpenAISimulator({ flavor: 'openai', models: ['gpt-4o-mini'], apiKey: KEY, tokens: 4 });
    const backend = createOpenAIBackend({ baseURL: `${sim.url}/v1`, apiKey: KEY, models: ['gpt-4o-mini'] });
    const completion = await backend.chat(call(), {});
    expect(completion).toMatchObject({ object: 'chat.completion', system_fingerprint: 'fp_sim0001', choices: [{ message: { content: simText(4), refusal: null } }] });
    const chunks: ChatChunk[] = [];
    for await (const chunk of backend.chatStream(call(), {})) chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(simText(4));
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 2, completion_tokens: 4, total_tokens: 6, prompt_tokens_details: { cached_tokens: 0 } } });
  });

  it('a rejected key is unauthorized and OpenAI\'s masked echo of it is dropped', async () => {
    sim = await startOpenAISimulator({ flavor: 'openai', models: ['gpt-4o-mini'], apiKey: 'sk-other' });
    const err = await createOpenAIBackend({ baseURL: `${sim.url}/v1`, apiKey: KEY, models: [] }).chat(call(), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ code: 'unauthorized', message: "openai rejected the gateway's API key (401)" });
    expect(JSON.stringify(err)).not.toContain('6789');
  });

  it('a 429 in OpenAI\'s shape becomes rate_limited with the hint', async () => {
    sim = await startOpenAISimulator({ flavor: 'openai', models: ['gpt-4o-mini'], faults: { status: 429, retryAfterSeconds: 20 } });
    const err = await createOpenAIBackend({ baseURL: `${sim.url}/v1`, apiKey: KEY, models: [] }).chat(call(), {}).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'rate_limited', retryAfterMs: 20_000, message: 'openai is rate limiting: Rate limit reached for requests. Please try again later.' });
  });
});
