import { describe, expect, it } from 'vitest';
import { OllamaStreamWatch, chatLineHasContent, generateLineHasContent, readOllamaAnswer } from './watch.ts';

// Lines follow Ollama's docs/api.md; the watch must forward every byte unchanged.

function ndjson(lines: unknown[]): Buffer {
  return Buffer.from(lines.map((line) => JSON.stringify(line) + '\n').join(''));
}

const final = {
  model: 'llama3.2', created_at: '2023-08-04T19:22:45.499127Z', message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop',
  total_duration: 4883583458, load_duration: 6338219291, prompt_eval_count: 26, prompt_eval_duration: 342546000, eval_count: 282, eval_duration: 4535599000,
};

function run(watch: OllamaStreamWatch, bytes: Buffer, cuts: number[]): Buffer {
  const out: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    const forwarded = watch.push(bytes.subarray(from, cut));
    if (forwarded) out.push(forwarded);
    from = cut;
  }
  const tail = watch.flush();
  if (tail) out.push(tail);
  return Buffer.concat(out);
}

describe('OllamaStreamWatch', () => {
  const stream = ndjson([
    { model: 'llama3.2', created_at: 't', message: { role: 'assistant', content: '' }, done: false },
    { model: 'llama3.2', created_at: 't', message: { role: 'assistant', content: 'The' }, done: false },
    // A nested "done" in tool arguments must not be taken for the final line.
    { model: 'llama3.2', created_at: 't', message: { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: { done: true, error: 'x' } } }] }, done: false },
    final,
  ]);

  it('forwards the bytes unchanged wherever they are cut, and reads content, the final line and the load time', () => {
    for (const cuts of [[], [1], [10, 11, 12], [stream.length - 3]]) {
      const watch = new OllamaStreamWatch(chatLineHasContent);
      expect(run(watch, stream, cuts).equals(stream)).toBe(true);
      expect(watch).toMatchObject({ hasContent: true, complete: true, error: undefined });
      expect(watch.facts).toEqual({ responseModel: 'llama3.2', finishReason: 'stop', inputTokens: 26, outputTokens: 282, loadMs: 6338 });
      expect(watch.loadMs).toBe(6338);
    }
  });

  it('has no content until text, thinking or a tool call, and is not complete before done:true', () => {
    const watch = new OllamaStreamWatch(chatLineHasContent);
    watch.push(ndjson([{ model: 'qwen3', message: { role: 'assistant', content: '' }, done: false }]));
    expect(watch.hasContent).toBe(false);
    watch.push(ndjson([{ model: 'qwen3', message: { role: 'assistant', content: '', thinking: 'Let' }, done: false }]));
    expect(watch.hasContent).toBe(true);
    expect(watch.complete).toBe(false);
  });

  it('reads an error line (HTTP 200) and a malformed line', () => {
    const watch = new OllamaStreamWatch(chatLineHasContent);
    watch.push(ndjson([{ model: 'm', message: { role: 'assistant', content: 'The' }, done: false }, { error: 'llama runner process has terminated: exit status 2' }]));
    // Ollama's text as it wrote it: the client speaks Ollama's API too.
    expect(watch.error).toMatchObject({ code: 'backend_error', message: 'llama runner process has terminated: exit status 2' });
    expect(watch.complete).toBe(false);
    const broken = new OllamaStreamWatch(chatLineHasContent);
    broken.push(Buffer.from('{"model":"m","message":\n'));
    expect(broken.error?.message).toMatch(/malformed/);
  });

  it('watches /api/generate lines by response and thinking', () => {
    const watch = new OllamaStreamWatch(generateLineHasContent);
    const bytes = ndjson([{ model: 'codellama:code', response: '', done: false }, { model: 'codellama:code', response: 'def', done: false }, { model: 'codellama:code', response: '', done: true, done_reason: 'length', context: [1, 2], prompt_eval_count: 17, eval_count: 1 }]);
    watch.push(bytes.subarray(0, 60));
    expect(watch.hasContent).toBe(false);
    watch.push(bytes.subarray(60));
    expect(watch).toMatchObject({ hasContent: true, complete: true });
    expect(watch.facts).toEqual({ responseModel: 'codellama:code', finishReason: 'length', inputTokens: 17, outputTokens: 1 });
  });

  it('takes a load answer (done:true at once) as complete content', () => {
    const watch = new OllamaStreamWatch(generateLineHasContent);
    watch.push(Buffer.from('{"model":"llama3.2","created_at":"t","response":"","done":true,"done_reason":"load"}'));
    watch.flush();
    expect(watch).toMatchObject({ hasContent: true, complete: true, facts: { finishReason: 'load' } });
  });
});

describe('readOllamaAnswer', () => {
  it('reads a whole chat answer and an embed answer from their top level', () => {
    expect(readOllamaAnswer(Buffer.from(JSON.stringify({ ...final, message: { role: 'assistant', content: 'eval_count: 5, "done_reason":"length"' } })))).toEqual({
      responseModel: 'llama3.2', finishReason: 'stop', inputTokens: 26, outputTokens: 282, loadMs: 6338,
    });
    expect(readOllamaAnswer(Buffer.from('{"model":"all-minilm","embeddings":[[0.1,0.2]],"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":8}')))
      .toEqual({ responseModel: 'all-minilm', inputTokens: 8, loadMs: 1 });
    expect(readOllamaAnswer(Buffer.from('{"embedding":[0.5]}'))).toEqual({});
  });
});
