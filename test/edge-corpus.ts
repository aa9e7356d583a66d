/**
 * A deterministic corpus of malformed and hostile HTTP requests for the ingress (test/edge-fuzz.test.ts).
 * Each input says how it travels (a well-formed request through node:http, or raw bytes through
 * node:net) and what answer is acceptable. Bodies are built lazily: a few are 4 MiB.
 */
import { httpBytes } from './edge-http.ts';

/**
 * - `reject`: invalid; the answer must be a 4xx.
 * - `maybe`: possibly valid (the router decides): 2xx, 4xx, or a 5xx from routing.
 * - `valid`: a valid request: 2xx, 429, or a 5xx from routing.
 */
export type Expectation = 'reject' | 'maybe' | 'valid';

export interface HttpInput {
  kind: 'http';
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

export interface RawInput {
  kind: 'raw';
  parts: Buffer[];
  /** Pause between parts, ms. */
  partDelayMs?: number;
  /** Complete responses expected (pipelined requests). */
  responses?: number;
  head?: boolean;
}

export interface FuzzInput {
  /** `category: detail`, for the report. */
  name: string;
  category: string;
  expect: Expectation;
  build(): HttpInput | RawInput;
  /** A HEAD request: the answer has no body. */
  head?: boolean;
  /** The connection may close without any response (e.g. CONNECT, bytes that are not HTTP). */
  closeOk?: boolean;
  /** The server may legitimately wait for more bytes (an incomplete request); give up after deadlineMs. */
  mayHang?: boolean;
  deadlineMs?: number;
}

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CHAT = '/v1/chat/completions';
const EMB = '/v1/embeddings';
const LOCAL_MODEL = 'vllm/Qwen/Qwen2.5-7B-Instruct';
const JSON_CT = { 'content-type': 'application/json' };

/** Valid requests the corpus starts from. */
export const BASES: { name: string; path: string; body: Record<string, unknown> }[] = [
  { name: 'chat', path: CHAT, body: { model: 'fast', messages: [{ role: 'user', content: 'Hello fuzz' }] } },
  {
    name: 'chat-stream', path: CHAT,
    body: { model: LOCAL_MODEL, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi \u00e9\u4e16\ud83d\ude00' }], stream: true, stream_options: { include_usage: true }, temperature: 0.2, max_tokens: 16, stop: ['\n\n'] },
  },
  {
    name: 'chat-tools', path: CHAT,
    body: {
      model: LOCAL_MODEL, messages: [{ role: 'user', content: 'Weather in Oslo?' }],
      tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }],
      tool_choice: 'auto', parallel_tool_calls: false, response_format: { type: 'text' }, seed: 7, user: 'fuzz',
    },
  },
  { name: 'embeddings', path: EMB, body: { model: 'vllm/BAAI/bge-small-en-v1.5', input: ['alpha', 'beta'] } },
];

const validChat = (): Record<string, unknown> => structuredClone(BASES[0]!.body);
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const http = (path: string, body: Buffer | undefined, headers: Record<string, string> = JSON_CT, method = 'POST'): HttpInput => ({ kind: 'http', method, path, headers, ...(body && { body }) });
const raw = (parts: Buffer[], extra: Partial<RawInput> = {}): RawInput => ({ kind: 'raw', parts, ...extra });
const VALID_CHAT_BYTES = (): Buffer => json({ model: LOCAL_MODEL, messages: [{ role: 'user', content: 'hi' }] });

/** The values every field of a request is replaced with, one at a time. */
const WRONG_VALUES: unknown[] = [null, true, false, 0, -1, 1.5, 1e308, -1e308, '', 'x', 'y'.repeat(300), [], [null], {}, { a: 1 }, [[[]]], '\u0000', 2 ** 53 + 1];
/** Invalid UTF-8 (and other odd byte sequences). */
const BAD_UTF8 = ['ff', 'fe', 'c328', 'a0a1', 'e228a1', 'e282', 'f0288cbc', 'c0af', 'eda080', 'f8a1a1a1a1', 'efbfbf', '00', 'dfff', 'f4908080'].map((h) => Buffer.from(h, 'hex'));

function setPath(obj: Record<string, unknown>, path: (string | number)[], value: unknown): Record<string, unknown> {
  let cur = obj as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) cur = cur[key] as Record<string | number, unknown>;
  cur[path.at(-1)!] = value;
  return obj;
}

/** The corpus for `seed`: the same inputs in the same order for the same seed. */
export function buildCorpus(seed: number): FuzzInput[] {
  const rnd = prng(seed);
  const int = (n: number): number => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const inputs: FuzzInput[] = [];
  const add = (category: string, detail: string, expect: Expectation, build: () => HttpInput | RawInput, extra: Partial<FuzzInput> = {}): void => {
    inputs.push({ name: `${category}: ${detail}`, category, expect, build, ...extra });
  };

  // Broken JSON: every valid request cut short every few bytes.
  for (const base of BASES) {
    const bytes = json(base.body);
    for (let n = 0; n < bytes.length; n += 3) add('truncated', `${base.name}[0..${n})`, 'reject', () => http(base.path, bytes.subarray(0, n)));
    add('truncated', `${base.name} whole`, 'valid', () => http(base.path, bytes));
  }

  // Random byte-level mutations of valid requests.
  const TOKENS = ['{', '}', '[', ']', '"', '\\', ',', ':', '-', '1e999', 'null', 'NaN', '\\u0000', '\\ud800', '"__proto__"', '{"__proto__":{"polluted":1}}', '\u2028', '\t', ' '.repeat(1000)];
  for (let i = 0; i < 1100; i++) {
    const base = pick(BASES);
    const src = json(base.body);
    const ops = 1 + int(4);
    const edits: [number, number, Buffer][] = [];
    for (let k = 0; k < ops; k++) {
      const at = int(src.length);
      const kind = int(5);
      if (kind === 0) edits.push([at, 1, Buffer.from([int(256)])]);
      else if (kind === 1) edits.push([at, 0, Buffer.from([int(256)])]);
      else if (kind === 2) edits.push([at, 1 + int(8), Buffer.alloc(0)]);
      else if (kind === 3) edits.push([at, 0, Buffer.from(pick(TOKENS))]);
      else edits.push([at, 0, src.subarray(int(src.length), int(src.length))]);
    }
    const detail = `${base.name} ${edits.map(([at, del, ins]) => `@${at}-${del}+${ins.toString('hex').slice(0, 16)}`).join(' ')}`;
    add('mutated', detail, 'maybe', () => {
      let out = Buffer.from(src);
      for (const [at, del, ins] of edits) out = Buffer.concat([out.subarray(0, at), ins, out.subarray(Math.min(out.length, at + del))]);
      return http(base.path, out);
    });
  }

  // Wrong types for every field of the chat request (and the embeddings one).
  const chatFields: (string | number)[][] = [
    ['model'], ['messages'], ['messages', 0], ['messages', 0, 'role'], ['messages', 0, 'content'], ['messages', 0, 'name'],
    ['stream'], ['stream_options'], ['tools'], ['tool_choice'], ['parallel_tool_calls'], ['response_format'], ['temperature'], ['top_p'],
    ['max_tokens'], ['max_completion_tokens'], ['stop'], ['seed'], ['user'], ['n'], ['frequency_penalty'], ['presence_penalty'],
    ['reasoning_effort'], ['logit_bias'], ['logprobs'], ['top_logprobs'], ['metadata'],
  ];
  for (const field of chatFields) {
    for (const value of WRONG_VALUES) {
      // Without a model or messages, or with a model that is not a non-empty string, nothing can be valid.
      const required = field[0] === 'model' ? typeof value !== 'string' || value === '' || value === '\u0000' || value === 'x' || (value as string).length > 256
        : field.length === 1 && field[0] === 'messages' ? !Array.isArray(value) || value.length === 0 || value[0] === null || Array.isArray(value[0]) : false;
      add('wrong-type', `${field.join('.')}=${JSON.stringify(value)?.slice(0, 20)}`, required ? 'reject' : 'maybe', () => http(CHAT, json(setPath(validChat(), field, value))));
    }
  }
  for (const field of [['model'], ['input'], ['encoding_format'], ['dimensions']]) {
    for (const value of WRONG_VALUES) {
      add('wrong-type', `embeddings.${field.join('.')}=${JSON.stringify(value)?.slice(0, 20)}`, 'maybe', () => http(EMB, json(setPath(structuredClone(BASES[3]!.body), field, value))));
    }
  }
  // Whole bodies of the wrong type.
  for (const body of ['null', 'true', '1', '"str"', '[]', '{}', '[{"model":"fast"}]', ' ', '\n', '{"model":"fast","messages":[{"role":"user","content":"hi"}]}{"x":1}', '{"model":"fast","model":1,"messages":[{"role":"user","content":"hi"}]}']) {
    add('wrong-type', `body=${body.slice(0, 30)}`, body.startsWith('{"model":"fast","model":1') ? 'maybe' : 'reject', () => http(CHAT, Buffer.from(body)));
  }

  // Deep nesting.
  const deep = (open: string, close: string, n: number, middle = ''): Buffer => Buffer.from(open.repeat(n) + middle + close.repeat(n));
  add('deep', 'array 10^5', 'reject', () => http(CHAT, deep('[', ']', 100_000)));
  add('deep', 'object 10^5', 'reject', () => http(CHAT, deep('{"a":', '}', 100_000, '1')));
  add('deep', 'array 2*10^6 (4 MB)', 'reject', () => http(CHAT, deep('[', ']', 2_000_000)));
  add('deep', 'object 6*10^5 (3.6 MB)', 'reject', () => http(CHAT, deep('{"a":', '}', 600_000, '1')));
  add('deep', 'unclosed array 10^5', 'reject', () => http(CHAT, Buffer.from('['.repeat(100_000))));
  add('deep', 'unclosed object 10^5', 'reject', () => http(CHAT, Buffer.from('{"a":'.repeat(100_000))));
  add('deep', 'extra field with arrays 10^5', 'maybe', () => http(CHAT, Buffer.from(`{"model":"${LOCAL_MODEL}","messages":[{"role":"user","content":"hi"}],"extra":${'['.repeat(100_000)}${']'.repeat(100_000)}}`)));
  add('deep', 'extra field with objects 10^5', 'maybe', () => http(CHAT, Buffer.from(`{"model":"${LOCAL_MODEL}","messages":[{"role":"user","content":"hi"}],"extra":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`)));
  add('deep', 'content of nested arrays 10^5', 'reject', () => http(CHAT, Buffer.from(`{"model":"${LOCAL_MODEL}","messages":[{"role":"user","content":${'['.repeat(100_000)}${']'.repeat(100_000)}}]}`)));
  add('deep', 'tool parameters 10^4 deep', 'maybe', () => http(CHAT, Buffer.from(`{"model":"${LOCAL_MODEL}","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":${'{"type":"object","properties":{"a":'.repeat(10_000)}{}${'}}'.repeat(10_000)}}}]}`)));

  // Huge strings and arrays, just under the 4 MiB body limit and just over it.
  const LIMIT = 4 * 1024 * 1024;
  const padded = (size: number, make: (fill: number) => string): Buffer => {
    const probe = Buffer.byteLength(make(0));
    const out = Buffer.from(make(size - probe));
    if (out.length !== size) throw new Error(`padded: ${out.length} != ${size}`);
    return out;
  };
  const hugeContent = (fill: number): string => JSON.stringify({ model: LOCAL_MODEL, messages: [{ role: 'user', content: 'a'.repeat(fill) }] });
  add('huge', 'content string, limit - 1', 'valid', () => http(CHAT, padded(LIMIT - 1, hugeContent)));
  // Over the limit, the ingress may answer 413 and close while the client is still writing (EPIPE before the answer is read).
  const over = { closeOk: true };
  add('huge', 'content string, limit + 1', 'reject', () => http(CHAT, padded(LIMIT + 1, hugeContent)), over);
  add('huge', 'content string of \\u escapes (4 MiB of JSON)', 'valid', () => http(CHAT, Buffer.from(JSON.stringify({ model: LOCAL_MODEL, messages: [{ role: 'user', content: '' }] }).replace('""', `"${'\\u00e9'.repeat(Math.floor((LIMIT - 200) / 6))}"`))));
  // Each message is 30 bytes with its comma.
  const manyMessages = (n: number): Buffer => json({ model: LOCAL_MODEL, messages: Array.from({ length: n }, () => ({ role: 'user', content: 'x' })) });
  add('huge', 'messages array just under the limit', 'valid', () => http(CHAT, manyMessages(Math.floor((LIMIT - 100) / 30))));
  add('huge', 'messages array just over the limit', 'reject', () => http(CHAT, manyMessages(Math.ceil((LIMIT + 100) / 30))), over);
  add('huge', 'stop array of 10^5 strings', 'reject', () => http(CHAT, json({ ...validChat(), stop: Array.from({ length: 100_000 }, (_, i) => `s${i}`) })));
  add('huge', 'number of 10^6 digits', 'reject', () => http(CHAT, Buffer.from(`{"model":"fast","messages":[{"role":"user","content":"hi"}],"temperature":${'9'.repeat(1_000_000)}}`)));
  add('huge', 'key of 4 MB', 'maybe', () => http(CHAT, Buffer.from(`{"model":"${LOCAL_MODEL}","messages":[{"role":"user","content":"hi"}],"${'k'.repeat(LIMIT - 200)}":1}`)));
  add('huge', 'embeddings input of 2049 strings', 'reject', () => http(EMB, json({ model: 'vllm/BAAI/bge-small-en-v1.5', input: Array.from({ length: 2049 }, () => 'x') })));
  add('huge', 'embeddings input of 5*10^5 token ids', 'maybe', () => http(EMB, json({ model: 'vllm/BAAI/bge-small-en-v1.5', input: Array.from({ length: 500_000 }, (_, i) => i % 1000) })));
  add('huge', 'model id of 10^5 characters', 'reject', () => http(CHAT, json({ ...validChat(), model: 'm'.repeat(100_000) })));
  add('huge', 'content-length just over the limit, tiny body', 'reject', () => raw([httpBytes('POST', CHAT, [['Content-Type', 'application/json'], ['Content-Length', String(LIMIT + 1)], ['Connection', 'close']], Buffer.from('{}'))]));

  // Invalid UTF-8 in the body: in a string, in the model name, in a key, outside any string.
  for (const bad of BAD_UTF8) {
    const hex = bad.toString('hex');
    const splice = (json_: string, marker: string): Buffer => { const [a, b] = json_.split(marker); return Buffer.concat([Buffer.from(a!), bad, Buffer.from(b!)]); };
    add('utf8-body', `content ${hex}`, 'maybe', () => http(CHAT, splice(JSON.stringify({ model: LOCAL_MODEL, messages: [{ role: 'user', content: 'a@@b' }] }), '@@')));
    add('utf8-body', `model ${hex}`, 'reject', () => http(CHAT, splice(JSON.stringify({ model: 'fast@@', messages: [{ role: 'user', content: 'hi' }] }), '@@')));
    add('utf8-body', `key ${hex}`, 'maybe', () => http(CHAT, splice(JSON.stringify({ model: LOCAL_MODEL, messages: [{ role: 'user', content: 'hi' }], 'k@@': 1 }), '@@')));
    add('utf8-body', `between tokens ${hex}`, 'reject', () => http(CHAT, splice(JSON.stringify({ model: 'fast', messages: [] }).replace(',', ',@@'), '@@')));
  }
  add('utf8-body', 'UTF-8 BOM', 'maybe', () => http(CHAT, Buffer.concat([Buffer.from('efbbbf', 'hex'), VALID_CHAT_BYTES()])));
  add('utf8-body', 'UTF-16LE body', 'reject', () => http(CHAT, Buffer.from(VALID_CHAT_BYTES().toString(), 'utf16le')));
  add('utf8-body', 'UTF-16LE body with BOM', 'reject', () => http(CHAT, Buffer.concat([Buffer.from('fffe', 'hex'), Buffer.from(VALID_CHAT_BYTES().toString(), 'utf16le')])));

  // Odd header values (invalid UTF-8, control characters, very long) on a valid request.
  const HEADER_NAMES = ['x-request-id', 'x-homelab-route', 'content-type', 'traceparent', 'authorization', 'x-api-key', 'user-agent', 'accept', 'origin', 'x-forwarded-for', 'cookie', 'accept-encoding', 'expect', 'connection'];
  const HEADER_VALUES: [string, Buffer][] = [
    ['ff fe', Buffer.from('fffe', 'hex')], ['c3', Buffer.from('c3', 'hex')], ['80abc', Buffer.from('80616263', 'hex')], ['DEL', Buffer.from('a\x7fb', 'latin1')],
    ['tab', Buffer.from('tab\there')], ['NUL', Buffer.from('a\x00b', 'latin1')], ['CR', Buffer.from('a\rb', 'latin1')], ['SOH', Buffer.from('\x01', 'latin1')],
    ['8000 chars', Buffer.from('v'.repeat(8000))], ['empty', Buffer.alloc(0)], ['latin1 e-acute', Buffer.from('\xe9', 'latin1')], ['%00', Buffer.from('%00')],
    ['local-only NUL', Buffer.from('local-only\x00', 'latin1')], ['utf8 emoji', Buffer.from('\ud83d\ude00')],
  ];
  for (const name of HEADER_NAMES) {
    for (const [label, value] of HEADER_VALUES) {
      add('header-value', `${name}: ${label}`, 'maybe', () => {
        const body = VALID_CHAT_BYTES();
        const head = Buffer.concat([
          Buffer.from(`POST ${CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: ${body.length}\r\n${name === 'content-type' ? '' : 'Content-Type: application/json\r\n'}${name}: `, 'latin1'),
          value, Buffer.from('\r\n\r\n'),
        ]);
        return raw([head, body]);
      }, name === 'expect' || name === 'connection' ? { closeOk: true } : {});
    }
  }
  for (const line of ['x y: v', 'x\xff: v', ': novalue', 'x-a:', 'x-b:    ', '\tfolded: v', 'x-c: a\r\n b', 'Content-Type : application/json']) {
    add('header-name', JSON.stringify(line), 'maybe', () => {
      const body = VALID_CHAT_BYTES();
      return raw([Buffer.from(`POST ${CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${line}\r\n\r\n`, 'latin1'), body]);
    });
  }

  // Oversized and many headers (Node's default limit is 16 KiB for the whole head: 431).
  const withHeaders = (headers: [string, string][], path = '/v1/models'): RawInput => raw([httpBytes('GET', path, [...headers, ['Connection', 'close']])]);
  add('big-headers', 'one header of 17 KiB', 'reject', () => withHeaders([['x-big', 'b'.repeat(17 * 1024)]]));
  add('big-headers', 'one header of 100 KiB', 'reject', () => withHeaders([['x-big', 'b'.repeat(100 * 1024)]]), { closeOk: true });
  add('big-headers', '40 headers of 500 bytes', 'reject', () => withHeaders(Array.from({ length: 40 }, (_, i): [string, string] => [`x-h${i}`, 'v'.repeat(500)])));
  add('big-headers', 'one header of 15 KiB', 'maybe', () => withHeaders([['x-big', 'b'.repeat(15 * 1024)]]));
  add('big-headers', 'request line of 20 KiB', 'reject', () => withHeaders([], `/v1/models/${'p'.repeat(20 * 1024)}`));
  add('many-headers', '1000 distinct headers', 'maybe', () => withHeaders(Array.from({ length: 1000 }, (_, i): [string, string] => [`x-${i}`, '1'])));
  add('many-headers', '2500 repeated headers', 'maybe', () => withHeaders(Array.from({ length: 2500 }, (): [string, string] => ['a', 'b'])));
  add('many-headers', '3000 headers over the size limit', 'reject', () => withHeaders(Array.from({ length: 3000 }, (_, i): [string, string] => [`x-${i}`, 'vv'])));
  add('many-headers', '500 x-request-id', 'maybe', () => withHeaders(Array.from({ length: 500 }, (_, i): [string, string] => ['x-request-id', `id-${i}`])));

  // Path tricks.
  const PATHS = [
    '/v1/../v1/models', '/%2e%2e/', '/%2e%2e/v1/models', '//v1//models', '/v1//models', '/v1/models/%00', '/v1/models/%', '/v1/models/%25', '/v1/models/%2525',
    '/v1/models/%25E0', '/v1/models/%E0%A4%A', '/v1/models/%ff', '/v1/models/..%2f..%2fetc%2fpasswd', `/v1/models/${'a'.repeat(600)}`, `/${'a'.repeat(8000)}`,
    `/v1/models?${'?'.repeat(5000)}`, `/v1/models?${'a=1&'.repeat(2000)}`, '/v1/models?a[b][c][d]=1', '/v1/models?__proto__=x&constructor[prototype][x]=1',
    '/v1/models#frag', '/v1/models;x=1', '/V1/MODELS', '/v1/models/', '/v1/chat/completions/', 'http://evil.example/v1/models', '*', '/v1/models\\..\\',
    '/v1/\x7fmodels', '/v1/models/\xff', '/status?', '/healthz/../readyz', `/v1/models/${'%2e%2e%2f'.repeat(50)}`, '/v1/models/%C0%AE%C0%AE', '/v1/models/a%2Fb',
    '/v1/models/llama3.2%3A3b', '/v1/models/%7B%7D', `/v1/models/${'%41'.repeat(3000)}`, '/v1/models/..', '/v1/models/.', '/.env', '/v1/models?%', '/v1/models?a=%E0%A4%A',
    '/v1/models/%u0041', '/v1/%2e%2e/status', '/v1/models/%0d%0aSet-Cookie:%20x=1', '/v1/models/x%0d%0ay',
  ];
  for (const path of PATHS) {
    const method = 'GET';
    add('path', `${method} ${JSON.stringify(path.slice(0, 60))}`, 'maybe', () => raw([Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, 'latin1')]));
  }
  const PATH_ALPHABET = ['/', '/', 'v1', 'models', 'chat', 'completions', '.', '..', '%', '%2f', '%2e', '%00', '%ff', '%25', '?', '&', '=', '#', ';', '~', '\\', '@', ':', '*', 'a', 'Z', '\u00e9', '%C3%A9', '+', ' '];
  for (let i = 0; i < 220; i++) {
    const path = `/${Array.from({ length: 1 + int(12) }, () => pick(PATH_ALPHABET)).join('')}`;
    const method = pick(['GET', 'POST']);
    add('path', `${method} random ${JSON.stringify(path)}`, 'maybe', () => raw([Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`, 'utf8')]));
  }

  // Odd methods on the API's paths.
  const API_PATHS = [CHAT, EMB, '/v1/models', '/v1/models/x', '/status', '/healthz', '/readyz'];
  for (const method of ['PUT', 'DELETE', 'TRACE', 'PATCH', 'OPTIONS', 'HEAD', 'CONNECT', 'PROPFIND', 'QUERY', 'GeT', 'FOO', 'G\xffT', 'SEARCH', 'LINK']) {
    for (const path of API_PATHS) {
      const expect: Expectation = ['PUT', 'DELETE', 'TRACE', 'PATCH', 'PROPFIND', 'FOO', 'SEARCH', 'LINK', 'QUERY'].includes(method) ? 'reject' : 'maybe';
      add('method', `${method} ${path}`, expect, () => raw([Buffer.from(`${method} ${method === 'CONNECT' ? '127.0.0.1:80' : path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`, 'latin1')], { head: method === 'HEAD' }),
        { closeOk: method === 'CONNECT', head: method === 'HEAD' });
    }
  }

  // Content types.
  const CONTENT_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', 'application/json; charset=latin1',
    'image/png', 'application/xml', ';;;', '', 'application/json, text/plain', 'APPLICATION/JSON', 'application/json ; charset = "utf-8"', 'x'.repeat(5000), 'application/octet-stream', '*/*', 'application/json; boundary=--'];
  for (const ct of CONTENT_TYPES) {
    add('content-type', `${JSON.stringify(ct.slice(0, 40))} valid body`, 'maybe', () => http(CHAT, VALID_CHAT_BYTES(), { 'content-type': ct }));
    add('content-type', `${JSON.stringify(ct.slice(0, 40))} form body`, 'reject', () => http(CHAT, Buffer.from('model=fast&messages=hi'), { 'content-type': ct }));
  }
  add('content-type', 'none, valid body', 'maybe', () => http(CHAT, VALID_CHAT_BYTES(), {}));
  add('content-type', 'multipart body', 'reject', () => http(CHAT, Buffer.from('--x\r\nContent-Disposition: form-data; name="model"\r\n\r\nfast\r\n--x--\r\n'), { 'content-type': 'multipart/form-data; boundary=x' }));

  // Duplicated headers.
  const dup = (detail: string, expect: Expectation, headers: [string, string][], body = VALID_CHAT_BYTES()): void =>
    add('duplicate-header', detail, expect, () => raw([httpBytes('POST', CHAT, [...headers, ['Connection', 'close']], body)]));
  const len = String(VALID_CHAT_BYTES().length);
  dup('content-length twice, same', 'maybe', [['Content-Type', 'application/json'], ['Content-Length', len], ['Content-Length', len]]);
  dup('content-length twice, different', 'reject', [['Content-Type', 'application/json'], ['Content-Length', len], ['Content-Length', '3']]);
  dup('content-length list', 'reject', [['Content-Type', 'application/json'], ['Content-Length', `${len}, ${len}`]]);
  dup('transfer-encoding and content-length', 'reject', [['Content-Type', 'application/json'], ['Content-Length', len], ['Transfer-Encoding', 'chunked']], Buffer.concat([Buffer.from(`${VALID_CHAT_BYTES().length.toString(16)}\r\n`), VALID_CHAT_BYTES(), Buffer.from('\r\n0\r\n\r\n')]));
  dup('transfer-encoding twice', 'maybe', [['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked'], ['Transfer-Encoding', 'chunked']], Buffer.concat([Buffer.from(`${VALID_CHAT_BYTES().length.toString(16)}\r\n`), VALID_CHAT_BYTES(), Buffer.from('\r\n0\r\n\r\n')]));
  dup('transfer-encoding: chunked, identity', 'reject', [['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked, identity']], Buffer.from('0\r\n\r\n'));
  dup('transfer-encoding: xchunked', 'reject', [['Content-Type', 'application/json'], ['Transfer-Encoding', 'xchunked']], Buffer.from('0\r\n\r\n'));
  dup('content-type twice', 'maybe', [['Content-Type', 'application/json'], ['Content-Type', 'text/plain']]);
  dup('host twice', 'maybe', [['Host', 'evil.example'], ['Content-Type', 'application/json']]);
  dup('x-request-id twice', 'maybe', [['Content-Type', 'application/json'], ['x-request-id', 'a'], ['x-request-id', 'b']]);
  dup('x-homelab-route twice', 'maybe', [['Content-Type', 'application/json'], ['x-homelab-route', 'local-only'], ['x-homelab-route', 'local-only']]);
  dup('authorization twice', 'maybe', [['Content-Type', 'application/json'], ['Authorization', 'Bearer a'], ['Authorization', 'Bearer b']]);
  dup('traceparent twice', 'maybe', [['Content-Type', 'application/json'], ['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'], ['traceparent', '00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-ff']]);
  dup('traceparent garbage', 'maybe', [['Content-Type', 'application/json'], ['traceparent', '00-zz-\u00e9-01'.repeat(50)]]);

  // Content-Length that does not match the body.
  const clMismatch = (detail: string, expect: Expectation, cl: string, body: Buffer, extra: Partial<FuzzInput> = {}, responses = 1): void =>
    add('content-length', detail, expect, () => raw([httpBytes('POST', CHAT, [['Content-Type', 'application/json'], ['Content-Length', cl]], body)], { responses }), extra);
  clMismatch('shorter than the body (the rest is a second, broken request)', 'maybe', '10', VALID_CHAT_BYTES(), { closeOk: true }, 2);
  clMismatch('longer than the body (the server waits for the rest)', 'maybe', String(VALID_CHAT_BYTES().length + 100), VALID_CHAT_BYTES(), { mayHang: true, deadlineMs: 1500 });
  for (const cl of ['-1', 'abc', '1e3', ' 5', '+5', '0x10', '99999999999999999999', '5.0', '', '1 2']) {
    clMismatch(`content-length: ${JSON.stringify(cl)}`, 'reject', cl, Buffer.from('{"a":'), { mayHang: true, deadlineMs: 1500 });
  }
  clMismatch('content-length: 0 with a body', 'reject', '0', VALID_CHAT_BYTES(), { closeOk: true }, 2);

  // Requests split across many TCP writes.
  const splitInto = (bytes: Buffer, size: number): Buffer[] => Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size));
  const fullRequest = (): Buffer => httpBytes('POST', CHAT, [['Content-Type', 'application/json'], ['Connection', 'close']], VALID_CHAT_BYTES());
  add('split', '1 byte per write', 'valid', () => raw(splitInto(fullRequest(), 1)));
  add('split', '3 bytes per write, 1 ms apart', 'valid', () => raw(splitInto(fullRequest(), 3), { partDelayMs: 1 }));
  add('split', 'at every CRLF', 'valid', () => { const s = fullRequest().toString('latin1'); return raw(s.split(/(?<=\r\n)/).map((p) => Buffer.from(p, 'latin1'))); });
  add('split', 'between CR and LF', 'valid', () => { const s = fullRequest().toString('latin1'); return raw(s.split(/(?<=\r)/).map((p) => Buffer.from(p, 'latin1'))); });
  add('split', 'chunked body, 1 byte per chunk, 1 write each', 'valid', () => {
    const body = VALID_CHAT_BYTES();
    const head = httpBytes('POST', CHAT, [['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked'], ['Connection', 'close']]);
    return raw([head, ...[...body].map((b) => Buffer.concat([Buffer.from('1\r\n'), Buffer.from([b]), Buffer.from('\r\n')])), Buffer.from('0\r\n\r\n')]);
  });
  add('split', 'chunked with extensions and trailers', 'valid', () => {
    const body = VALID_CHAT_BYTES();
    return raw([httpBytes('POST', CHAT, [['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked'], ['Connection', 'close']]), Buffer.from(`${body.length.toString(16)};ext=1\r\n`), body, Buffer.from('\r\n0\r\nx-trailer: 1\r\n\r\n')]);
  });
  add('split', 'chunk size with leading zeros', 'maybe', () => raw([httpBytes('POST', CHAT, [['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked'], ['Connection', 'close']]), Buffer.from(`000000000000000000${VALID_CHAT_BYTES().length.toString(16)}\r\n`), VALID_CHAT_BYTES(), Buffer.from('\r\n0\r\n\r\n')]));
  add('split', 'chunk size overflow', 'reject', () => raw([httpBytes('POST', CHAT, [['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked'], ['Connection', 'close']]), Buffer.from('ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n')]), { closeOk: true });
  add('split', 'chunks summing over the body limit', 'reject', () => {
    const chunk = Buffer.concat([Buffer.from(`${(1024 * 1024).toString(16)}\r\n`), Buffer.alloc(1024 * 1024, 'a'), Buffer.from('\r\n')]);
    return raw([httpBytes('POST', CHAT, [['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked'], ['Connection', 'close']]), chunk, chunk, chunk, chunk, chunk, Buffer.from('0\r\n\r\n')]);
  }, { closeOk: true });
  add('split', 'pipelined: valid, broken, valid', 'maybe', () => {
    const one = httpBytes('GET', '/healthz', []);
    return raw([Buffer.concat([one, Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n{{{'), one, httpBytes('GET', '/healthz', [['Connection', 'close']])])], { responses: 4 });
  });

  // Not HTTP, or not quite.
  const NOT_HTTP = [
    'GARBAGE\r\n\r\n', 'GET / HTTP/9.9\r\nHost: x\r\n\r\n', 'GET / HTTP/1.1\nHost: x\n\n', 'GET /v1/models HTTP/1.0\r\n\r\n', 'GET /v1/models\r\n\r\n',
    'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 'GET  /v1/models  HTTP/1.1\r\nHost: x\r\n\r\n', ' GET /v1/models HTTP/1.1\r\n\r\n',
    'GET /v1/models HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n',
    'GET /v1/models HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    'GET /v1/models HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
    'GET /v1/models HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n', 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}',
    'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\n{}', '\r\n\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
  ];
  for (const text of NOT_HTTP) add('not-http', JSON.stringify(text.slice(0, 50)), 'maybe', () => raw([Buffer.from(`${text}`, 'latin1')]), { closeOk: true, mayHang: true, deadlineMs: 1500 });
  for (let i = 0; i < 160; i++) {
    const n = 1 + int(600);
    const printable = rnd() < 0.5;
    const bytes = Buffer.from(Array.from({ length: n }, () => (printable ? 32 + int(95) : int(256))));
    add('not-http', `random ${printable ? 'printable' : 'binary'} ${n} bytes #${i}`, 'maybe', () => raw([Buffer.concat([bytes, Buffer.from('\r\n\r\n')])]), { closeOk: true, mayHang: true, deadlineMs: 1500 });
  }

  return inputs;
}

/**
 * Requests that never finish sending (slowloris): a chunked body that never ends, a body shorter
 * than its content-length, headers that never end. They are held open during the whole fuzz run.
 */
export function slowRequests(): { name: string; head: Buffer; drip: Buffer }[] {
  return [
    ...Array.from({ length: 4 }, (_, i) => ({ name: `chunked body that never ends #${i}`, head: Buffer.concat([httpBytes('POST', CHAT, [['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked']]), Buffer.from('5\r\n{"a":\r\n')]), drip: Buffer.from('1\r\n \r\n') })),
    ...Array.from({ length: 2 }, (_, i) => ({ name: `body shorter than its content-length #${i}`, head: httpBytes('POST', CHAT, [['Content-Type', 'application/json'], ['Content-Length', '1000000']], Buffer.from('{"model":')), drip: Buffer.from(' ') })),
    ...Array.from({ length: 2 }, (_, i) => ({ name: `headers that never end #${i}`, head: Buffer.from(`GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n`), drip: Buffer.from(`x-${i}: y\r\n`) })),
  ];
}
