import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { GatewayError, validator } from '@homelab/bus';
import { simText, simToken, startOpenAISimulator, type OpenAISimulatorOptions, type Simulator } from '@homelab/simulators';
import { afterEach, describe, expect, it } from 'vitest';
import type { AnswerFacts, Completion, TranslationContext } from '../types.ts';
import { CompletionRequestSchema, openAICompletions } from './index.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test access into wire JSON

const check = validator(CompletionRequestSchema);

describe('CompletionRequestSchema', () => {
  it('takes every prompt form and fields it does not know', () => {
    for (const prompt of ['def add(a, b):', ['a', 'b'], [1, 2, 3], [[1, 2], [3]]]) expect(check.check({ model: 'm', prompt })).toBe(true);
    expect(check.check({ model: 'm', prompt: 'x', suffix: 'y', echo: true, logprobs: 3, n: 2, best_of: 3, stop: ['\n'], top_k: 20, min_p: 0.1, seed: 7, logit_bias: { '50256': -100 } })).toBe(true);
  });

  it('refuses what OpenAI refuses, naming the field', () => {
    const param = (body: Json): string | null => {
      try { check.parse(body); } catch (err) { return (err as GatewayError).param; }
      throw new Error('accepted');
    };
    expect(param({ model: 'm' })).toBe('prompt');
    expect(param({ model: 'm', prompt: [] })).toBe('prompt');
    expect(param({ model: 'm', prompt: ['a', 1] })).toBe('prompt[1]');
    expect(param({ model: 'm', prompt: 'x', suffix: 5 })).toBe('suffix');
    expect(param({ model: 'm', prompt: 'x', logprobs: -1 })).toBe('logprobs');
    expect(param({ model: 'm', prompt: 'x', n: 0 })).toBe('n');
    expect(param({ model: 'm', prompt: 'x', echo: 'yes' })).toBe('echo');
    expect(param({ model: 'm', prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] })).toBe('stop');
    expect(param({ prompt: 'x' })).toBe('model');
  });
});

// ---- the official SDK against the simulators through a miniature worker ----------------------

let backend: Simulator | undefined;
let server: Server | undefined;
let facts: AnswerFacts[] = [];
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
  await backend?.close();
  backend = undefined;
  facts = [];
});

/**
 * Serves `POST /v1/completions` in front of a simulator: `passthrough` sends the client's bytes with
 * the model set and watches the answer on its way back (vLLM, OpenAI); `translate` goes through the
 * internal form (decoder, encoder), as for a backend of another dialect.
 */
async function startGateway(mode: 'passthrough' | 'translate', options: OpenAISimulatorOptions = {}): Promise<OpenAI> {
  backend = await startOpenAISimulator({ models: ['m1'], tokens: 5, ...options });
  const simulator = backend;
  server = createServer((req, res) => {
    void (async () => {
      const parts: Buffer[] = [];
      for await (const part of req) parts.push(part as Buffer);
      const bytes = Buffer.concat(parts);
      const payload = check.parse(JSON.parse(bytes.toString('utf8')));
      const stream = payload.stream === true;
      const includeUsage = payload.stream_options?.include_usage === true;
      const context: TranslationContext = { requestId: randomUUID(), model: 'm1', requestedModel: payload.model, created: 1, includeUsage };
      const body = mode === 'passthrough'
        ? openAICompletions.passThrough!(bytes, { model: 'm1', stream })
        : JSON.stringify(openAICompletions.requestFromInternal!(openAICompletions.requestToInternal!(payload), { model: 'm1', stream }));
      const upstream = await fetch(`${simulator.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      if (!upstream.ok || !stream) {
        const answer = Buffer.from(await upstream.arrayBuffer());
        if (upstream.ok) facts.push(openAICompletions.readAnswer!(answer));
        res.writeHead(upstream.status, { 'content-type': 'application/json' });
        res.end(mode === 'translate' && upstream.ok ? openAICompletions.answerFromInternal!(openAICompletions.answerToInternal!(JSON.parse(answer.toString('utf8')), context), context, {} as never) : answer);
        return;
      }
      res.writeHead(200, { 'content-type': openAICompletions.framing!.contentType });
      if (mode === 'passthrough') {
        const watch = openAICompletions.watch!({ includeUsage });
        for await (const chunk of upstream.body!) { const out = watch.push(chunk as Uint8Array); if (out) res.write(out); }
        const tail = watch.flush();
        res.end(tail);
        facts.push({ ...watch.facts, ...(watch.complete && { finishReason: `${watch.facts.finishReason ?? ''} (complete)` }) });
        return;
      }
      const decoder = openAICompletions.createDecoder!(context);
      const encoder = openAICompletions.createEncoder!(context, {} as never);
      for await (const chunk of upstream.body!) for (const completion of decoder.push(chunk as Uint8Array)) res.write(encoder.push(completion));
      res.end(encoder.end());
    })().catch((err: unknown) => {
      const error = openAICompletions.error(err instanceof GatewayError ? err : new GatewayError('internal_error', String(err)));
      res.writeHead(error.status, { 'content-type': 'application/json' });
      res.end(error.body);
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return new OpenAI({ apiKey: 'lab-key', baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, maxRetries: 0 });
}

describe('client.completions.create through the completions dialect', () => {
  it('pass-through to vLLM: the request arrives unchanged but for the model; the answer reaches the SDK', async () => {
    const client = await startGateway('passthrough');
    const completion = await client.completions.create({ model: 'coder', prompt: 'def add(a, b):', max_tokens: 3, echo: true, logprobs: 1, top_k: 5 } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(completion.choices).toHaveLength(1);
    expect(completion.choices[0]).toMatchObject({ index: 0, text: `def add(a, b):${simText(3)}`, finish_reason: 'length' });
    expect(completion.choices[0]!.logprobs!.tokens!.slice(-3)).toEqual([simToken(0), simToken(1), simToken(2)]);
    const sent = JSON.parse(backend!.requests[0]!.rawBody!.toString('utf8')) as Json;
    expect(sent).toEqual({ model: 'm1', prompt: 'def add(a, b):', max_tokens: 3, echo: true, logprobs: 1, top_k: 5 });
    expect(facts[0]).toEqual({ responseModel: 'm1', finishReason: 'length', inputTokens: 3, outputTokens: 3 });
  });

  it('pass-through streaming: the SDK reads the chunks; the usage chunk it did not ask for is kept from it', async () => {
    const client = await startGateway('passthrough');
    const chunks: Completion[] = [];
    for await (const chunk of await client.completions.create({ model: 'coder', prompt: ['A', 'B'], stream: true, n: 2 })) chunks.push(chunk);
    const texts = new Map<number, string>();
    for (const chunk of chunks) for (const choice of chunk.choices) texts.set(choice.index, (texts.get(choice.index) ?? '') + choice.text);
    expect([...texts.entries()].sort()).toEqual([0, 1, 2, 3].map((index) => [index, simText(5)]));
    expect(chunks.some((c) => c.usage)).toBe(false);
    // The gateway asked for usage anyway, for its own accounting.
    expect(backend!.requests[0]!.body).toMatchObject({ stream_options: { include_usage: true } });
    expect(facts[0]).toEqual({ responseModel: 'm1', finishReason: 'stop (complete)', inputTokens: 2, outputTokens: 20 });
  });

  it('pass-through streaming with include_usage: the usage chunk reaches the SDK', async () => {
    const client = await startGateway('passthrough', { flavor: 'openai' });
    const chunks: Completion[] = [];
    for await (const chunk of await client.completions.create({ model: 'coder', prompt: 'Go', stream: true, stream_options: { include_usage: true } })) chunks.push(chunk);
    expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: 1, completion_tokens: 5, total_tokens: 6 });
    expect(chunks.map((c) => c.choices[0]?.text ?? '').join('')).toBe(simText(5));
  });

  it('through the internal form (decoder and encoder), plain and streamed', async () => {
    const client = await startGateway('translate', { flavor: 'openai' });
    const plain = await client.completions.create({ model: 'coder', prompt: 'fn main() {', suffix: '}', max_tokens: 4 });
    expect(plain.choices[0]).toMatchObject({ text: simText(4), finish_reason: 'length' });
    expect(backend!.requests[0]!.body).toMatchObject({ model: 'm1', suffix: '}', stream: false });
    const streamed: string[] = [];
    for await (const chunk of await client.completions.create({ model: 'coder', prompt: 'fn main() {', stream: true })) streamed.push(chunk.choices[0]?.text ?? '');
    expect(streamed.join('')).toBe(simText(5));
  });

  it("vLLM refuses suffix: the client reads vLLM's 400", async () => {
    const client = await startGateway('passthrough');
    const error = await client.completions.create({ model: 'coder', prompt: 'x', suffix: 'y' }).then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as Error).message).toContain('suffix is not currently supported');
  });

  it('a bad request is an OpenAI-shaped 400 naming the field', async () => {
    const client = await startGateway('passthrough');
    const error = await client.completions.create({ model: 'coder', prompt: 'x', max_tokens: 'many' } as unknown as OpenAI.CompletionCreateParamsNonStreaming).then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('max_tokens');
    expect(backend!.requests).toHaveLength(0);
  });
});

describe('openAICompletions', () => {
  it('requestFromInternal: model and stream set, stream_options only when streaming', () => {
    const internal = openAICompletions.requestToInternal!(check.parse({ model: 'coder', prompt: 'x', stream_options: { include_usage: false } }));
    expect(openAICompletions.requestFromInternal!(internal, { model: 'm1', stream: false })).toEqual({ model: 'm1', prompt: 'x', stream: false });
    expect(openAICompletions.requestFromInternal!(internal, { model: 'm1', stream: true })).toEqual({ model: 'm1', prompt: 'x', stream: true, stream_options: { include_usage: true } });
    expect(() => openAICompletions.requestFromInternal!({ form: 'chat', request: { model: 'x', messages: [] } }, { model: 'm1', stream: false })).toThrow(TypeError);
  });

  it('routing: the model, whether it streams, and whether the client asked for the usage chunk (as chat)', () => {
    const routing = (body: Json) => openAICompletions.routing(check.parse(body));
    expect(routing({ model: 'coder', prompt: 'x' })).toEqual({ model: 'coder', stream: false, includeUsage: false });
    expect(routing({ model: 'coder', prompt: 'x', stream: true })).toEqual({ model: 'coder', stream: true, includeUsage: false });
    expect(routing({ model: 'coder', prompt: 'x', stream: true, stream_options: { include_usage: true } })).toEqual({ model: 'coder', stream: true, includeUsage: true });
    expect(routing({ model: 'coder', prompt: 'x', stream_options: { include_usage: true } })).toEqual({ model: 'coder', stream: false, includeUsage: false });
  });

  it('is registered under openai.completions', async () => {
    const { dialectOf } = await import('../registry.ts');
    expect(dialectOf('openai.completions')).toBe(openAICompletions);
    expect(dialectOf('openai.responses').name).toBe('openai.responses');
  });
});
