import { Type } from '@sinclair/typebox';

/**
 * The inference providers, in one place: the keys under `inference:` in the lab's YAML, the model
 * prefixes (`vllm/Qwen…`), the worker subjects' token (`worker.vllm.generate`), the `backend` of
 * events and metrics. Everything else derives from these lists.
 */
export const PROVIDERS = ['vllm', 'ollama', 'openai', 'anthropic'] as const;
export type Provider = (typeof PROVIDERS)[number];

/** Backends that run in the lab: a request to them never leaves the house. */
export const LOCAL_PROVIDERS = ['vllm', 'ollama'] as const satisfies readonly Provider[];
export type LocalProvider = (typeof LOCAL_PROVIDERS)[number];

/** Cloud APIs: they cost money, so keys' budgets and the daily cloud budget apply. */
export const CLOUD_PROVIDERS = ['openai', 'anthropic'] as const satisfies readonly Provider[];
export type CloudProvider = (typeof CLOUD_PROVIDERS)[number];

export function isProvider(value: unknown): value is Provider {
  return typeof value === 'string' && (PROVIDERS as readonly string[]).includes(value);
}

export function isCloudProvider(value: unknown): value is CloudProvider {
  return typeof value === 'string' && (CLOUD_PROVIDERS as readonly string[]).includes(value);
}

/** The schema of a provider name. */
export const ProviderSchema = Type.Union(PROVIDERS.map((p) => Type.Literal(p)));

/** `provider/…`: a model named with its provider's prefix. */
export const PROVIDER_PREFIX_PATTERN = `^(${PROVIDERS.join('|')})/`;

/**
 * Every backend an API key may be limited to (`auth.keys[].backends`, `homelab keys create --backends`):
 * the inference providers, and ComfyUI for images (docs/images.md).
 */
export const KEY_BACKENDS = [...PROVIDERS, 'comfyui'] as const;
export const KeyBackendSchema = Type.Union(KEY_BACKENDS.map((b) => Type.Literal(b)));
