import type { RoutingConfig } from '@homelab/config';

/** USD per million tokens by `provider/model`, `provider/*` covering the rest (`routing.prices`). */
export type PriceTable = RoutingConfig['prices'];

/**
 * Estimated cost of one request in USD: the same rule as the router's spend ceiling
 * (services/router/src/spend.ts), so the dashboard and the budget agree. Unpriced: 0.
 */
export function costUsd(provider: string, model: string | undefined, inputTokens: number, outputTokens: number, prices: PriceTable): number {
  const price = (model !== undefined ? prices[`${provider}/${model}`] : undefined) ?? prices[`${provider}/*`];
  if (!price) return 0;
  return (inputTokens * price.input + outputTokens * price.output) / 1e6;
}
