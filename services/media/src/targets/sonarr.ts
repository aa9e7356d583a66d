import { createArrTarget, type ArrFlavor } from './arr.ts';
import type { MediaTarget, TargetLimits, TargetSpec } from './types.ts';

/** Sonarr v3/v4: queue records point at episodes; `wanted/missing` and `wanted/cutoff` count episodes. */
export const sonarrFlavor: ArrFlavor = {
  kind: 'sonarr',
  queueQuery: { includeUnknownSeriesItems: 'true', includeSeries: 'false', includeEpisode: 'false' },
  async wantedCounts(client, signal) {
    const [missing, cutoffUnmet] = await Promise.all([
      client.count('/wanted/missing', signal),
      client.count('/wanted/cutoff', signal),
    ]);
    return { missing, cutoffUnmet };
  },
};

export function createSonarrTarget(spec: TargetSpec, limits: TargetLimits): MediaTarget {
  return createArrTarget(spec, sonarrFlavor, limits);
}
