import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '@homelab/bus';
import { simText, startOpenAISimulator, type Simulator } from '@homelab/simulators';
import type { ChatCall, ChatChunk } from '../types.ts';
import { createVllmBackend } from './index.ts';

let sim: Simulator | undefined;
afterEach(async () => { await sim?.close(); sim = undefined; });

function call(model = 'Qwen/Qwen2.5-7B-Instruct'): ChatCall {
  return { request: { model, messages: [{ role: 'user', content: 'hello there' }] }, requestId: 'r', signal: new AbortController().signal };
}

describe('vLLM backend', () => {
  it('talks to <url>/v1 with a placeholder key when vLLM runs without --api-key', async () => {
    sim = await startOpenAISimulator({ flavor: 'vllm', models: ['Qwen/Qwen2.5-7B-Instruct'], tokens: 3 });
    const backend = createVllmBackend({ url: `${sim.url}/` });
    expect(backend.provider).toBe('vllm');
    const completion = await backend.chat(call(), {});
    expect(completion.choices[0]!.message.content).toBe(simText(3));
    expect(sim.requests[0]).toMatchObject({ method: 'POST', path: '/v1/chat/completions' });
    expect(sim.requests[0]!.headers.authorization).toBe('Bearer EMPTY');
    expect(await backend.listModels(new AbortController().signal)).toEqual([{ id: 'Qwen/Qwen2.5-7B-Instruct', created: expect.any(Number) }]);
  });

  it('sends the configured key; a wrong one is unauthorized without the key in the message', async () => {
    sim = await startOpenAISimulator({ flavor: 'vllm', models: ['m'], apiKey: 'lab-key-1' });
    const chunks: ChatChunk[] = [];
    for await (const chunk of createVllmBackend({ url: sim.url, apiKey: 'lab-key-1' }).chatStream(call('m'), {})) chunks.push(chunk);
    expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 8, total_tokens: 10 });

    const err = await createVllmBackend({ url: sim.url, apiKey: 'lab-key-WRONG' }).chat(call('m'), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ code: 'unauthorized', status: 401, message: "vllm rejected the gateway's API key (401)" });
    expect((err as Error).message).not.toContain('WRONG');
  });

  it('maps the vLLM 404 for a model it does not serve', async () => {
    sim = await startOpenAISimulator({ flavor: 'vllm', models: ['m'] });
    const err = await createVllmBackend({ url: sim.url }).chat(call('other'), {}).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'model_not_found', message: 'vllm: The model `other` does not exist.' });
  });
});
