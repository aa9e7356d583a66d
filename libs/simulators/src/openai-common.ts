import type { ServerResponse } from 'node:http';

/* What the OpenAI simulator's endpoints share: error sending, sample values, word counts. */

export type OpenAISimulatorFlavor = 'vllm' | 'openai';

export type Json = Record<string, unknown>;
export interface ErrorExtra { code?: string | null; param?: string | null; type?: string; headers?: Record<string, string> }
export type SendError = (res: ServerResponse, status: number, message: string, extra?: ErrorExtra) => void;

export const FINGERPRINT = 'fp_sim0001';
export const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' };

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function firstNumber(...values: unknown[]): number | undefined {
  for (const v of values) if (typeof v === 'number') return v;
  return undefined;
}

export function countWords(text: string): number {
  return words(text).length;
}

/** The whitespace-separated words of a text: the simulators' tokens. */
export function words(text: string): string[] {
  return text.split(/\s+/).filter(Boolean);
}

/** Splits text into up to `count` pieces of (nearly) equal length, as a streamed answer arrives. */
export function splitPieces(text: string, count: number): string[] {
  const size = Math.max(1, Math.ceil(text.length / count));
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size));
  return pieces;
}

/** A value that satisfies a JSON schema's required properties, with simple values. */
export function sampleObject(schema: unknown): Json {
  const out: Json = {};
  if (!isObject(schema) || !Array.isArray(schema.required)) return out;
  const properties = isObject(schema.properties) ? schema.properties : {};
  for (const key of schema.required) out[String(key)] = sampleValue(properties[String(key)]);
  return out;
}

function sampleValue(schema: unknown): unknown {
  if (!isObject(schema)) return 'sim';
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  switch (Array.isArray(schema.type) ? schema.type[0] : schema.type) {
    case 'integer': case 'number': return 1;
    case 'boolean': return true;
    case 'array': return [];
    case 'object': return sampleObject(schema);
    case 'null': return null;
    default: return 'sim';
  }
}

/** A random id tail of `length` hex digits. */
export function hexId(length: number): string {
  let out = '';
  while (out.length < length) out += crypto.randomUUID().replaceAll('-', '');
  return out.slice(0, length);
}
