import { Type } from '@sinclair/typebox';
import { MediaError } from '../errors.ts';
import { shape } from '../http.ts';
import { createArrTarget, type ArrClient, type ArrFlavor } from './arr.ts';
import type { MediaTarget, TargetLimits, TargetSpec } from './types.ts';

const MoviesShape = shape(Type.Array(Type.Object({ monitored: Type.Boolean(), hasFile: Type.Boolean(), isAvailable: Type.Optional(Type.Boolean()) }, { additionalProperties: true })));

/**
 * Radarr: queue records point at movies. `wanted/missing` and `wanted/cutoff` exist from v5.6;
 * before that, missing = monitored, available movies without a file, and the cutoff count is unknown.
 */
export const radarrFlavor: ArrFlavor = {
  kind: 'radarr',
  queueQuery: { includeUnknownMovieItems: 'true', includeMovie: 'false' },
  async wantedCounts(client, signal) {
    try {
      const [missing, cutoffUnmet] = await Promise.all([client.count('/wanted/missing', signal), client.count('/wanted/cutoff', signal)]);
      return { missing, cutoffUnmet };
    } catch (err) {
      if (!(err instanceof MediaError) || err.status !== 404) throw err;
      return { missing: await legacyMissing(client, signal), cutoffUnmet: null };
    }
  },
};

async function legacyMissing(client: ArrClient, signal: AbortSignal): Promise<number> {
  const movies = await client.get('/movie', MoviesShape, signal);
  return movies.filter((m) => m.monitored && !m.hasFile && m.isAvailable !== false).length;
}

export function createRadarrTarget(spec: TargetSpec, limits: TargetLimits): MediaTarget {
  return createArrTarget(spec, radarrFlavor, limits);
}
