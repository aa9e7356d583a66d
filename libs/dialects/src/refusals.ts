import { GatewayError } from '@homelab/bus';

/**
 * A request the backend at hand cannot serve though another might (fill-in-the-middle on vLLM,
 * `n > 1` on Ollama, OpenAI's built-in tools on a local model): the router tries the next
 * candidate of an alias, and only the last refusal reaches the client, as a 400.
 */
export function unsupportedHere(message: string, param: string | null): GatewayError {
  return new GatewayError('unsupported', message, { param });
}
