import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { simText, startOpenAISimulator, type Simulator } from '@homelab/simulators';
import { afterEach, describe, expect, it } from 'vitest';
import { openAIResponses } from './index.ts';
import { ResponsesStreamWatch, readResponsesAnswer, responsesEventName } from './watch.ts';

let sim: Simulator | undefined;
let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
  await sim?.close();
  sim = undefined;
});

/** A client's request as the worker passes it to OpenAI: its bytes with only the model set. */
async function passThrough(clientBody: string, stream: boolean): Promise<Buffer> {
  sim ??= await startOpenAISimulator({ flavor: 'openai', models: ['gpt-5-mini'], tokens: 5 });
  const bytes = openAIResponses.passThrough!(Buffer.from(clientBody), { model: 'gpt-5-mini', stream });
  const res = await fetch(`${sim.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bytes });
  return Buffer.from(await res.arrayBuffer());
}

/** Feeds `bytes` to a watch in pieces of `size`, recording what it lets out after each push. */
function watchInPieces(bytes: Buffer, size: number): { watch: ResponsesStreamWatch; out: Buffer; outAt: number[] } {
  const watch = new ResponsesStreamWatch();
  const parts: Buffer[] = [];
  const outAt: number[] = [];
  for (let at = 0; at < bytes.length; at += size) {
    const out = watch.push(bytes.subarray(at, at + size));
    if (out) { parts.push(Buffer.from(out)); outAt.push(at); }
  }
  const tail = watch.flush();
  if (tail) parts.push(Buffer.from(tail));
  return { watch, out: Buffer.concat(parts), outAt };
}

describe('Responses pass-through to OpenAI', () => {
  it('the request reaches OpenAI unchanged but for the model', async () => {
    const client = '{ "model": "smart",\n "input": [{"role":"user","content":"Hi"}], "store": false, "include": ["reasoning.encrypted_content"], "future_field": {"a": [1, 2]} }';
    await passThrough(client, false);
    const sent = sim!.requests[0]!.rawBody!.toString('utf8');
    expect(sent).toBe(client.replace('"smart"', '"gpt-5-mini"'));
  });

  it('the watch lets every byte through unchanged, reads the usage and the end', async () => {
    const stream = await passThrough('{"model":"smart","input":"What is the weather in Paris today?","stream":true}', true);
    for (const size of [1, 7, 64, stream.length]) {
      const { watch, out } = watchInPieces(stream, size);
      expect(out.equals(stream)).toBe(true);
      expect(watch).toMatchObject({ hasContent: true, complete: true, error: undefined });
      expect(watch.facts).toEqual({ responseModel: 'gpt-5-mini', finishReason: 'completed', inputTokens: 7, outputTokens: 5 });
      expect(watch.response).toMatchObject({ object: 'response', status: 'completed', output: [{ type: 'message' }] });
    }
  });

  it('holds back the events before the first content, then lets them out together', async () => {
    const stream = await passThrough('{"model":"smart","input":"Hi","stream":true}', true);
    const firstDelta = stream.indexOf('event: response.output_text.delta');
    const { watch, outAt } = watchInPieces(stream, 16);
    // Nothing went out before the bytes of the first delta arrived.
    expect(outAt[0]).toBeGreaterThan(firstDelta);
    expect(watch.hasContent).toBe(true);
  });

  it('a function call item is content; an encrypted reasoning item is not', async () => {
    const body = '{"model":"smart","input":"Weather?","stream":true,"reasoning":{"effort":"low"},"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]}';
    const stream = await passThrough(body, true);
    const callAdded = stream.indexOf('event: response.output_item.added', stream.indexOf('event: response.output_item.done'));
    const watch = new ResponsesStreamWatch();
    // Created, in progress, the reasoning item added and done: nothing for the client yet.
    expect(watch.push(stream.subarray(0, callAdded))).toBeUndefined();
    expect(watch.hasContent).toBe(false);
    const end = stream.indexOf('\n\n', callAdded) + 2;
    expect(Buffer.from(watch.push(stream.subarray(callAdded, end))!).equals(stream.subarray(0, end))).toBe(true);
    expect(watch.hasContent).toBe(true);
  });

  it('a cut-off answer: incomplete, with its reason', async () => {
    const stream = await passThrough('{"model":"smart","input":"Hi","stream":true,"max_output_tokens":2}', true);
    const { watch } = watchInPieces(stream, 50);
    expect(watch.complete).toBe(true);
    expect(watch.facts).toMatchObject({ finishReason: 'max_output_tokens', outputTokens: 2 });
  });

  it('readAnswer reads a whole Response from its top-level fields', async () => {
    const tools = '[{"type":"function","name":"report","parameters":{"type":"object","properties":{"usage":{"type":"object"},"model":{"type":"string"}}}}]';
    const answer = await passThrough(`{"model":"smart","input":[{"role":"assistant","content":"Earlier"},{"role":"user","content":"Tell me"}],"tools":${tools},"tool_choice":"none"}`, false);
    expect(openAIResponses.readAnswer!(answer)).toEqual({ responseModel: 'gpt-5-mini', finishReason: 'completed', inputTokens: 3, outputTokens: 5 });
    expect(JSON.parse(answer.toString('utf8')).output[0].content[0].text).toBe(simText(5));
  });
});

describe('ResponsesStreamWatch: errors in the stream', () => {
  const event = (type: string, data: object): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const created = event('response.created', { sequence_number: 0, response: { id: 'resp_1', object: 'response', model: 'gpt-5', status: 'in_progress', output: [] } });

  it('an error event before content: let out with what was held, so the worker can decide', () => {
    const watch = new ResponsesStreamWatch();
    expect(watch.push(Buffer.from(created))).toBeUndefined();
    const failure = event('error', { sequence_number: 1, code: 'server_error', message: 'The server had an error', param: null });
    const out = watch.push(Buffer.from(failure));
    expect(Buffer.from(out!).toString('utf8')).toBe(created + failure);
    expect(watch.hasContent).toBe(false);
    expect(watch.error?.message).toBe('the backend failed mid-stream: The server had an error');
  });

  it('response.failed ends the stream with an error and the usage so far', () => {
    const watch = new ResponsesStreamWatch();
    watch.push(Buffer.from(created + event('response.output_text.delta', { sequence_number: 1, item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'Hi' })));
    expect(watch.hasContent).toBe(true);
    watch.push(Buffer.from(event('response.failed', {
      sequence_number: 2,
      response: { id: 'resp_1', object: 'response', model: 'gpt-5', status: 'failed', error: { code: 'server_error', message: 'overloaded' }, output: [], usage: { input_tokens: 4, output_tokens: 1, total_tokens: 5, input_tokens_details: { cached_tokens: 2 } } },
    })));
    expect(watch).toMatchObject({ complete: true, facts: { finishReason: 'failed', inputTokens: 4, outputTokens: 1, cachedTokens: 2 } });
    expect(watch.error?.message).toContain('overloaded');
  });

  it('a malformed terminal event is an error; event names come from event: lines or the data type', () => {
    const watch = new ResponsesStreamWatch();
    watch.push(Buffer.from('event: response.completed\ndata: {not json\n\n'));
    expect(watch.error?.message).toBe('the backend sent a malformed response.completed event');
    expect(responsesEventName(Buffer.from('data: {"type":"response.output_text.delta","delta":"x"}\n\n'))).toBe('response.output_text.delta');
    expect(responsesEventName(Buffer.from(': keepalive\n\n'))).toBeUndefined();
    expect(readResponsesAnswer(Buffer.from('[1]'))).toEqual({});
  });
});

describe('the official openai SDK reads OpenAI through the pass-through', () => {
  /** A worker in miniature for a client whose backend speaks Responses: bytes out with the model set, bytes back through the watch. */
  async function startPassThrough(): Promise<{ client: OpenAI; watches: ResponsesStreamWatch[] }> {
    sim = await startOpenAISimulator({ flavor: 'openai', models: ['gpt-5-mini'], tokens: 5 });
    const backend = sim;
    const watches: ResponsesStreamWatch[] = [];
    server = createServer((req, res) => {
      void (async () => {
        const parts: Buffer[] = [];
        for await (const part of req) parts.push(part as Buffer);
        const stream = (JSON.parse(Buffer.concat(parts).toString('utf8')) as { stream?: boolean }).stream === true;
        const upstream = await fetch(`${backend.url}/v1/responses`, {
          method: 'POST', headers: { 'content-type': 'application/json' },
          body: openAIResponses.passThrough!(Buffer.concat(parts), { model: 'gpt-5-mini', stream }),
        });
        res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
        if (!stream || !upstream.ok) { res.end(Buffer.from(await upstream.arrayBuffer())); return; }
        const watch = new ResponsesStreamWatch();
        watches.push(watch);
        for await (const chunk of upstream.body!) { const out = watch.push(chunk as Uint8Array); if (out) res.write(out); }
        res.end(watch.flush());
      })();
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return { client: new OpenAI({ apiKey: 'lab-key', baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, maxRetries: 0 }), watches };
  }

  it('responses.stream(…).finalResponse(), a function call, a stored continuation', async () => {
    const { client, watches } = await startPassThrough();
    const tools = [{ type: 'function' as const, name: 'get_weather', strict: true, parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false } }];
    const call = await client.responses.stream({ model: 'smart', input: 'Weather in Oslo?', tools }).finalResponse();
    expect(call.output[0]).toMatchObject({ type: 'function_call', name: 'get_weather', arguments: '{"city":"sim"}' });
    const callItem = call.output[0]!;
    if (callItem.type !== 'function_call') throw new Error('expected a function call');
    const answer = await client.responses.stream({
      model: 'smart', tools, previous_response_id: call.id,
      input: [{ type: 'function_call_output', call_id: callItem.call_id, output: '12 degrees' }],
    }).finalResponse();
    expect(answer.output_text).toBe(simText(5));
    expect(answer.previous_response_id).toBe(call.id);
    expect(watches.map((w) => [w.complete, w.hasContent, w.facts.finishReason])).toEqual([[true, true, 'completed'], [true, true, 'completed']]);
    const whole = await client.responses.create({ model: 'smart', input: 'Hi', reasoning: { effort: 'low' } });
    expect(whole.output_text).toBe(simText(5));
    expect(whole.output[0]!.type).toBe('reasoning');
  });
});
