import { createHash } from 'node:crypto';
import { ollamaModelNotFound, ollamaModelRequired } from './errors.ts';
import type { OllamaCapability, OllamaListedModel, OllamaModelDetails, OllamaRunningModel, OllamaShowResponse } from './wire.ts';

/*
 * Ollama's model endpoints answered from the lab's catalog, so an Ollama client (Open WebUI's
 * Ollama connection, the `ollama` npm client) lists and inspects every model of the lab: vLLM,
 * Ollama and cloud models and the aliases. Pure functions of the catalog entries of the router's
 * `GET /v1/models` (`id`, `owned_by`, `created`, `loaded`, `alias_of`); an entry may carry Ollama's
 * own facts (`size`, `digest`, `details`, `modified_at`, `expires_at`, `size_vram`,
 * `context_length` or vLLM's `max_model_len`, `capabilities`), which are used where present.
 * What no backend says is left empty or derived from the name, as stated at each field.
 */

/** The version `/api/version` reports: the Ollama API this dialect follows (clients compare it to enable features). */
export const OLLAMA_API_VERSION = '0.12.3';

/** The text of `GET /` and `HEAD /`, which clients probe to find an Ollama server. */
export const OLLAMA_ROOT_TEXT = 'Ollama is running';

/** One model of the lab's catalog, as `GET /v1/models` lists it. */
export interface CatalogEntry {
  id: string;
  owned_by: string;
  created?: number;
  loaded?: boolean;
  alias_of?: string[];
  size?: number;
  digest?: string;
  details?: Partial<OllamaModelDetails>;
  modified_at?: string;
  expires_at?: string;
  size_vram?: number;
  context_length?: number;
  max_model_len?: number;
  capabilities?: string[];
  [fact: string]: unknown;
}

/**
 * The name an Ollama client sees and sends back: Ollama names are `name:tag`, and clients add
 * `:latest` to a name without a tag (Open WebUI does before every call), so the lab's `smart` is
 * listed as `smart:latest`.
 */
export function ollamaModelName(id: string): string {
  return id.includes(':') ? id : `${id}:latest`;
}

/** The catalog id an Ollama client means by `name`: the same id, or the id without (or with) Ollama's `:latest`. */
export function catalogIdForOllamaName(name: string, ids: Iterable<string>): string | undefined {
  const known = new Set(ids);
  if (known.has(name)) return name;
  if (name.endsWith(':latest') && known.has(name.slice(0, -':latest'.length))) return name.slice(0, -':latest'.length);
  if (!name.includes(':') && known.has(`${name}:latest`)) return `${name}:latest`;
  return undefined;
}

/** The last path segment without the tag: `Qwen/Qwen2.5-7B-Instruct` → `Qwen2.5-7B-Instruct`. */
function baseName(id: string): string {
  const last = id.slice(id.lastIndexOf('/') + 1);
  const colon = last.indexOf(':');
  return colon < 0 ? last : last.slice(0, colon);
}

/** The model the entry stands for: an alias's first candidate (`vllm/*` names no model), else itself. */
function underlyingId(entry: CatalogEntry): string {
  const first = entry.alias_of?.[0];
  if (!first) return entry.id;
  const model = first.slice(first.indexOf('/') + 1);
  return model === '*' ? entry.id : model;
}

/** Derived family: the letters the base name starts with (`llama3.2` → `llama`, `gpt-4o` → `gpt`, `claude-…` → `claude`). */
function familyOf(id: string): string {
  return /^[a-z]+/i.exec(baseName(id))?.[0]?.toLowerCase() ?? '';
}

/** Derived parameter size from a name like `…-7B-…` or `llama3.1:8b`; empty when the name does not say. */
function parameterSizeOf(id: string): string {
  const match = /(?:^|[-_:/.])(\d+(?:\.\d+)?)[bB](?=$|[-_:.])/.exec(id);
  return match ? `${match[1]}B` : '';
}

function detailsOf(entry: CatalogEntry): OllamaModelDetails {
  const model = underlyingId(entry);
  const family = entry.details?.family ?? familyOf(model);
  return {
    parent_model: entry.details?.parent_model ?? entry.alias_of?.[0] ?? '',
    // Only Ollama's own models are known to be GGUF files; the others' format is not the gateway's to know.
    format: entry.details?.format ?? (entry.owned_by === 'ollama' ? 'gguf' : ''),
    family,
    families: entry.details?.families ?? (family ? [family] : null),
    parameter_size: entry.details?.parameter_size ?? parameterSizeOf(model),
    quantization_level: entry.details?.quantization_level ?? '',
  };
}

/** A stable digest when the backend gave none: the SHA-256 of the id. */
function digestOf(entry: CatalogEntry): string {
  return entry.digest ?? createHash('sha256').update(entry.id).digest('hex');
}

function modifiedAtOf(entry: CatalogEntry): string {
  return entry.modified_at ?? new Date((entry.created ?? 0) * 1000).toISOString();
}

function contextLengthOf(entry: CatalogEntry): number | undefined {
  return entry.context_length ?? entry.max_model_len;
}

/** `GET /api/tags`: every model of the lab in Ollama's list shape, aliases included, in the catalog's order. */
export function ollamaTags(catalog: readonly CatalogEntry[]): { models: OllamaListedModel[] } {
  return {
    models: catalog.map((entry) => ({
      name: ollamaModelName(entry.id),
      model: ollamaModelName(entry.id),
      modified_at: modifiedAtOf(entry),
      size: entry.size ?? 0,
      digest: digestOf(entry),
      details: detailsOf(entry),
    })),
  };
}

const CAPABILITIES: readonly OllamaCapability[] = ['completion', 'tools', 'insert', 'vision', 'embedding', 'thinking'];

/**
 * What a model can do, as known: the entry's own list (an Ollama node's `/api/show`), else what the
 * name tells: embedding models by name; cloud chat models have tools and vision, and their reasoning
 * models thinking; a local model is only known to complete.
 */
export function capabilitiesOf(entry: CatalogEntry): OllamaCapability[] {
  if (entry.capabilities) return entry.capabilities.filter((c): c is OllamaCapability => (CAPABILITIES as readonly string[]).includes(c));
  const model = underlyingId(entry).toLowerCase();
  if (/embed|bge-|e5-|minilm/.test(model)) return ['embedding'];
  if (entry.owned_by === 'openai') return /^(o\d|gpt-5)/.test(baseName(model)) ? ['completion', 'tools', 'vision', 'thinking'] : ['completion', 'tools', 'vision'];
  if (entry.owned_by === 'anthropic') return /claude-(3-7|(opus|sonnet|haiku)-4)/.test(model) ? ['completion', 'tools', 'vision', 'thinking'] : ['completion', 'tools', 'vision'];
  return ['completion'];
}

/**
 * `POST /api/show` for the model an Ollama client names (`model`, or the older `name`). Throws
 * Ollama's own errors: 400 `model is required`, 404 `model '<name>' not found`.
 */
export function ollamaShow(catalog: readonly CatalogEntry[], body: { model?: unknown; name?: unknown } | null | undefined): OllamaShowResponse {
  const requested = typeof body?.model === 'string' && body.model ? body.model : typeof body?.name === 'string' ? body.name : '';
  if (!requested) throw ollamaModelRequired();
  const id = catalogIdForOllamaName(requested, catalog.map((entry) => entry.id));
  const entry = catalog.find((candidate) => candidate.id === id);
  if (!entry) throw ollamaModelNotFound(requested);
  const details = detailsOf(entry);
  const modelInfo: Record<string, unknown> = { 'general.architecture': details.family, 'general.basename': baseName(underlyingId(entry)) };
  const contextLength = contextLengthOf(entry);
  if (contextLength !== undefined && details.family) modelInfo[`${details.family}.context_length`] = contextLength;
  return { details, model_info: modelInfo, capabilities: capabilitiesOf(entry), modified_at: modifiedAtOf(entry) };
}

/** Go's `time.Now().Add(math.MaxInt64)`: what Ollama shows for a model kept loaded forever (`keep_alive: -1`). */
function forever(): string {
  return new Date(Date.now() + 9_223_372_036_854).toISOString();
}

/**
 * `GET /api/ps`: the models in memory now. Ollama's loaded models (`loaded: true`) and vLLM's (a
 * vLLM server holds its model for as long as it runs, so it never expires); cloud models and
 * aliases are not in the lab's memory.
 */
export function ollamaPs(catalog: readonly CatalogEntry[]): { models: OllamaRunningModel[] } {
  return {
    models: catalog.filter((entry) => !entry.alias_of && (entry.loaded === true || entry.owned_by === 'vllm')).map((entry) => ({
      name: ollamaModelName(entry.id),
      model: ollamaModelName(entry.id),
      size: entry.size ?? 0,
      digest: digestOf(entry),
      details: detailsOf(entry),
      expires_at: entry.expires_at ?? forever(),
      size_vram: entry.size_vram ?? entry.size ?? 0,
      context_length: contextLengthOf(entry) ?? 0,
    })),
  };
}

/** `GET /api/version`. */
export function ollamaVersion(version: string = OLLAMA_API_VERSION): { version: string } {
  return { version };
}
