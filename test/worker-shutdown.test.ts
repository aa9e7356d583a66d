import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { startTestStack } from '@homelab/testing';

/*
 * A worker told to stop (SIGTERM, as systemd, compose or a rolling restart sends it) takes no new
 * request and finishes the answers it holds before it exits 0: a stream that began on it ends whole.
 * worker-cloud serves two backends and OpenAI's image jobs; each has its own shutdown step, and one
 * step that ends early must not end the process under the others' streams.
 */
const TOKENS = 30;

describe('a worker stopped mid-stream', () => {
  it.each([
    ['worker-vllm', 'vllm/Qwen/Qwen2.5-7B-Instruct'],
    ['worker-ollama', 'ollama/llama3.2:3b'],
    ['worker-cloud', 'gpt-4.1-mini'],
    ['worker-cloud', 'claude-haiku-4-5'],
  ])('%s (%s): the stream it holds ends whole, then it exits 0', async (folder, model) => {
    await using stack = await startTestStack({ tokens: TOKENS, tokenIntervalMs: 20 });
    const worker = stack.services.find((s) => s.name === folder)!;
    const client = new OpenAI({ baseURL: `${stack.ingressUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model, stream: true, messages: [{ role: 'user', content: 'Hello' }] });
    let chunks = 0;
    let finish: string | null | undefined;
    let exited: Promise<number | null> | undefined;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) chunks++;
      finish ??= chunk.choices[0]?.finish_reason;
      if (chunks === 3 && !exited) exited = worker.stop('SIGTERM');
    }
    expect(chunks).toBe(TOKENS);
    expect(finish).toBe('stop');
    expect(await exited, worker.stderr()).toBe(0);
  }, 60_000);
});
