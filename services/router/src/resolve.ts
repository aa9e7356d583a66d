import { GatewayError } from '@homelab/bus';
import { CLOUD_PROVIDERS, LOCAL_PROVIDERS, isProvider, type LabConfig, type Provider } from '@homelab/config';

export type { Provider } from '@homelab/config';

export interface Candidate {
  provider: Provider;
  /** The backend's own model id. */
  model: string;
}

export interface Resolution {
  candidates: Candidate[];
  /** How the model name was understood, e.g. `alias:smart`, `explicit:ollama`, `discovered:vllm`, `prefix:anthropic`. */
  reason: string;
  /** Candidates left out and why (not configured, not served now), for the route reason. */
  skipped: string[];
}

/** What each local backend serves now, from discovery. */
export interface ModelView {
  served(provider: Provider): readonly { id: string; loaded?: boolean }[] | undefined;
}

const CLOUD_PREFIXES: readonly [RegExp, Provider][] = [
  [/^(gpt-|chatgpt-|o1|o3|o4|text-embedding-|davinci|babbage|omni-)/, 'openai'],
  [/^claude-/, 'anthropic'],
];

/**
 * Turns the model a client asked for into an ordered list of backend candidates. Pure: the
 * router's dispatch tries them in order. Order of understanding:
 * 1. `provider/model` names one backend explicitly;
 * 2. an alias from the config gives its candidates (`vllm/*` = whatever vLLM serves now);
 * 3. a bare name goes to the local backends that serve it now (vLLM before Ollama, a loaded Ollama model first);
 * 4. otherwise a cloud model by its configured list or name prefix (`gpt-*`, `o3*`, `claude-*`), when a key is configured.
 */
export function resolveModel(requested: string, config: Pick<LabConfig, 'aliases' | 'backends'>, view: ModelView): Resolution {
  const skipped: string[] = [];
  const configured = (p: Provider): boolean => config.backends[p] !== undefined;

  const slash = requested.indexOf('/');
  const prefix = slash > 0 ? requested.slice(0, slash) : '';
  if (isProvider(prefix)) {
    const provider = prefix;
    const model = requested.slice(slash + 1);
    if (!model) throw new GatewayError('invalid_request', `model '${requested}' names no model after '${provider}/'`, { param: 'model' });
    if (!configured(provider)) throw new GatewayError('no_backend', `${provider} is not configured in this lab${cloudHint(provider)}`, { param: 'model' });
    return { candidates: [{ provider, model }], reason: `explicit:${provider}`, skipped };
  }

  const alias = config.aliases[requested];
  if (alias) {
    const candidates: Candidate[] = [];
    for (const entry of alias) {
      const i = entry.indexOf('/');
      const provider = entry.slice(0, i) as Provider;
      let model = entry.slice(i + 1);
      if (!configured(provider)) { skipped.push(`${provider} not configured`); continue; }
      if (model === '*') {
        const first = view.served(provider)?.[0];
        if (!first) { skipped.push(`${provider} serves no model now`); continue; }
        model = first.id;
      }
      candidates.push({ provider, model });
    }
    if (candidates.length === 0) throw new GatewayError('no_backend', `no backend of alias '${requested}' is available (${skipped.join(', ')})`, { param: 'model' });
    return { candidates, reason: `alias:${requested}`, skipped };
  }

  const local: Candidate[] = [];
  for (const provider of LOCAL_PROVIDERS) {
    if (!configured(provider)) continue;
    const models = view.served(provider);
    const match = models?.find((m) => sameModel(m.id, requested));
    if (match) local.push({ provider, model: match.id });
  }
  if (local.length > 0) {
    // Among local backends serving it, a model already in memory answers first (no cold load).
    local.sort((a, b) => Number(isLoaded(view, b)) - Number(isLoaded(view, a)));
    return { candidates: local, reason: `discovered:${local[0]!.provider}${isLoaded(view, local[0]!) ? ' (loaded)' : ''}`, skipped };
  }

  for (const provider of CLOUD_PROVIDERS) {
    const listed = config.backends[provider]?.models.includes(requested);
    const byPrefix = CLOUD_PREFIXES.some(([re, p]) => p === provider && re.test(requested));
    if (!listed && !byPrefix) continue;
    if (!configured(provider)) throw new GatewayError('no_backend', `'${requested}' is a ${provider} model, but ${provider} is not configured${cloudHint(provider)}`, { param: 'model' });
    return { candidates: [{ provider, model: requested }], reason: `${listed ? 'configured' : 'prefix'}:${provider}`, skipped };
  }
  throw new GatewayError('model_not_found', `The model '${requested}' does not exist or no backend of this lab serves it now`, { param: 'model' });
}

const LATEST = ':latest';

/**
 * The name the lab knows a model by, for a name with Ollama's `:latest` tag. Ollama clients add
 * `:latest` to every name without a tag (Open WebUI does before each call; `/api/tags` lists the
 * alias `smart` as `smart:latest`), but only Ollama's own models carry tags: an alias, a vLLM or a
 * cloud model asked for as `<name>:latest` is `<name>`. A name the lab knows as it is stays as it is.
 */
export function canonicalModelName(requested: string, config: Pick<LabConfig, 'aliases' | 'backends'>, view: ModelView): string {
  if (!requested.endsWith(LATEST)) return requested;
  const bare = requested.slice(0, -LATEST.length);
  const slash = requested.indexOf('/');
  const prefix = slash > 0 ? requested.slice(0, slash) : '';
  if (isProvider(prefix)) return prefix === 'ollama' ? requested : bare;
  if (config.aliases[requested]) return requested;
  if (config.aliases[bare]) return bare;
  const servedLocally = (name: string): boolean => LOCAL_PROVIDERS.some((p) => view.served(p)?.some((m) => m.id === name));
  if (servedLocally(requested)) return requested;
  if (servedLocally(bare)) return bare;
  const isCloud = CLOUD_PROVIDERS.some((p) => config.backends[p]?.models.includes(bare)) || CLOUD_PREFIXES.some(([re]) => re.test(bare));
  return isCloud ? bare : requested;
}

/** Ollama lists `llama3.2:latest` for `llama3.2`; clients use either. */
function sameModel(served: string, requested: string): boolean {
  return served === requested || served === `${requested}:latest`;
}

function isLoaded(view: ModelView, c: Candidate): boolean {
  return view.served(c.provider)?.find((m) => m.id === c.model)?.loaded === true;
}

function cloudHint(provider: Provider): string {
  if (provider === 'openai') return ' (set OPENAI_API_KEY)';
  if (provider === 'anthropic') return ' (set ANTHROPIC_API_KEY)';
  return '';
}
