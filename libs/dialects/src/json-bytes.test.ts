import { describe, expect, it } from 'vitest';
import { keyMarker, readTopLevel, scanValueAfterKey, setTopLevel, topLevelSpans } from './json-bytes.ts';

const bytes = (text: string): Uint8Array => Buffer.from(text);
const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

describe('topLevelSpans', () => {
  it('finds the values of top-level keys only, skipping nested ones and strings that look like keys', () => {
    const body = bytes('{ "messages": [{"model": "inner", "content": "\\"model\\": x"}], "model" : "qwen", "n": 2 }');
    const spans = topLevelSpans(body, ['model', 'n'])!;
    expect(text(body.subarray(spans.get('model')!.start, spans.get('model')!.end))).toBe('"qwen"');
    expect(text(body.subarray(spans.get('n')!.start, spans.get('n')!.end))).toBe('2');
  });
  it('takes the last of a repeated key, as JSON.parse does; undefined for a non-object', () => {
    expect(readTopLevel(bytes('{"model":"a","model":"b"}'), 'model')).toBe('b');
    expect(topLevelSpans(bytes('[1,2]'), ['model'])).toBeUndefined();
    expect(readTopLevel(bytes('{"a":{"b":[1,{"c":"}"}]}}'), 'a')).toEqual({ b: [1, { c: '}' }] });
  });
  it('reads escaped keys', () => {
    expect(readTopLevel(bytes('{"mo\\u0064el":"x"}'), 'model')).toBe('x');
  });
});

describe('setTopLevel', () => {
  it('replaces a value in place and leaves every other byte as it was', () => {
    const out = text(setTopLevel(bytes('{"model":"smart",  "messages":[{"role":"user","content":"hi"}],"x":{"y":1}}'), { model: 'Qwen/Qwen2.5' }));
    expect(out).toBe('{"model":"Qwen/Qwen2.5",  "messages":[{"role":"user","content":"hi"}],"x":{"y":1}}');
  });
  it('adds an absent key at the front, also to an empty object', () => {
    expect(text(setTopLevel(bytes('{"model":"m"}'), { stream_options: { include_usage: true } }))).toBe('{"stream_options":{"include_usage":true},"model":"m"}');
    expect(text(setTopLevel(bytes(' { } '), { model: 'm' }))).toBe(' {"model":"m" } ');
  });
  it('removes a key in the middle, at the end, and the only one', () => {
    expect(text(setTopLevel(bytes('{"a":1, "b":2, "c":3}'), { b: undefined }))).toBe('{"a":1, "c":3}');
    expect(text(setTopLevel(bytes('{"a":1, "b":2}'), { b: undefined }))).toBe('{"a":1}');
    expect(text(setTopLevel(bytes('{"b":"x\\"y"}'), { b: undefined }))).toBe('{}');
  });
  it('gives JSON that parses to the edited object', () => {
    const body = { model: 'smart', stream: true, messages: [{ role: 'user', content: 'ünïcödé "quoted"' }], temperature: 0.5 };
    const out = JSON.parse(text(setTopLevel(bytes(JSON.stringify(body, null, 2)), { model: 'real', stream_options: { include_usage: true }, temperature: undefined })));
    expect(out).toEqual({ stream_options: { include_usage: true }, model: 'real', stream: true, messages: body.messages });
  });
});

describe('scanValueAfterKey', () => {
  it('reads a string, null, or the raw text of another value after a key, tolerating spaces', () => {
    const event = bytes('data: {"choices":[{"delta":{},"finish_reason" : "stop"}],"usage": {"prompt_tokens":3}}');
    expect(scanValueAfterKey(event, keyMarker('finish_reason'))).toBe('stop');
    expect(scanValueAfterKey(event, keyMarker('usage'))).toBe('{"prompt_tokens":3}');
    expect(scanValueAfterKey(bytes('{"finish_reason":null}'), keyMarker('finish_reason'))).toBeNull();
    expect(scanValueAfterKey(bytes('{"content":"finish_reason"}'), keyMarker('finish_reason'))).toBeUndefined();
  });
});
