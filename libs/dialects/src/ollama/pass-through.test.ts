import { describe, expect, it } from 'vitest';
import { ollamaPassThrough } from './pass-through.ts';

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');

describe('ollamaPassThrough', () => {
  const body = '{"model":"smart",  "messages":[{"role":"user","content":"hi"}],"options":{"num_ctx":8192,"temperature":0.1,"mirostat":2},"think":"high","x_future":[1,{"a":null}]}';

  it("changes only the model; options, think and unknown fields stay byte for byte", () => {
    expect(text(ollamaPassThrough(Buffer.from(body), { model: 'qwen3:8b', stream: true }, true))).toBe(body.replace('"smart"', '"qwen3:8b"'));
  });

  it('returns the same bytes when nothing changes', () => {
    const bytes = Buffer.from(body);
    expect(ollamaPassThrough(bytes, { model: 'smart', stream: true }, true)).toBe(bytes);
  });

  it("adds the lab's keep_alive only when the client sent none (null counts as none)", () => {
    expect(text(ollamaPassThrough(Buffer.from(body), { model: 'smart', stream: true, defaults: { keep_alive: '30m' } }, true))).toBe(body.replace('{', '{"keep_alive":"30m",'));
    const own = '{"model":"smart","keep_alive":0,"prompt":"x"}';
    expect(text(ollamaPassThrough(Buffer.from(own), { model: 'smart', stream: true, defaults: { keep_alive: '30m' } }, true))).toBe(own);
    expect(text(ollamaPassThrough(Buffer.from('{"model":"smart","keep_alive":null}'), { model: 'smart', stream: true, defaults: { keep_alive: -1 } }, true))).toBe('{"model":"smart","keep_alive":-1}');
  });

  it("sets stream only when the worker's choice differs from what the body means (absent = true)", () => {
    expect(text(ollamaPassThrough(Buffer.from('{"model":"m"}'), { model: 'm', stream: false }, true))).toBe('{"stream":false,"model":"m"}');
    expect(text(ollamaPassThrough(Buffer.from('{"model":"m","stream":false}'), { model: 'm', stream: false }, true))).toBe('{"model":"m","stream":false}');
    expect(text(ollamaPassThrough(Buffer.from('{"model":"m","stream":false}'), { model: 'm', stream: true }, true))).toBe('{"model":"m","stream":true}');
    // /api/embed does not stream: its bodies keep their stream field, whatever it says.
    expect(text(ollamaPassThrough(Buffer.from('{"model":"m","input":"x"}'), { model: 'm', stream: false }, false))).toBe('{"model":"m","input":"x"}');
  });
});
