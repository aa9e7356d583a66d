import { simText, startOpenAISimulator, type Simulator } from '@homelab/simulators';
import { afterEach, describe, expect, it } from 'vitest';
import { openAIResponses } from './index.ts';
import { ResponsesStreamWatch, readResponsesAnswer, responsesEventName } from './watch.ts';

let sim: Simulator | undefined;
afterEach(async () => { await sim?.close(); sim = undefined; });

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

  it('a function call item is content; a reasoning item alone is not', async () => {
    const body = '{"model":"smart","input":"Weather?","stream":true,"reasoning":{"effort":"low"},"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]}';
    const stream = await passThrough(body, true);
    const reasoningDone = stream.indexOf('event: response.output_item.done');
    const watch = new ResponsesStreamWatch();
    expect(watch.push(stream.subarray(0, reasoningDone))).toBeUndefined();
    expect(watch.hasContent).toBe(false);
    const callAdded = stream.indexOf('event: response.output_item.added', reasoningDone);
    const end = stream.indexOf('\n\n', callAdded) + 2;
    expect(watch.push(stream.subarray(reasoningDone, end))).toBeDefined();
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
