import { Type } from '@sinclair/typebox';
import type { MediaProwlarrLibrary } from '@homelab/bus';
import { shape } from '../http.ts';
import { ArrClient, HealthShape, SystemStatusShape, healthIssues } from './arr.ts';
import { nowIso, type MediaTarget, type TargetSpec } from './types.ts';

const Open = { additionalProperties: true } as const;
const OptStr = Type.Optional(Type.Union([Type.String(), Type.Null()]));
const IndexersShape = shape(Type.Array(Type.Object({ id: Type.Integer(), name: Type.String(), enable: Type.Boolean() }, Open)));
const IndexerStatusShape = shape(Type.Array(Type.Object({ indexerId: Type.Integer(), disabledTill: OptStr, mostRecentFailure: OptStr }, Open)));
const Count = Type.Optional(Type.Integer());
const IndexerStatsShape = shape(Type.Object({
  indexers: Type.Array(Type.Object({
    indexerId: Type.Integer(), indexerName: Type.String(), averageResponseTime: Type.Optional(Type.Number()),
    numberOfQueries: Count, numberOfGrabs: Count, numberOfFailedQueries: Count, numberOfFailedGrabs: Count,
  }, Open)),
}, Open));

/** Prowlarr (API v1): its indexers, the ones it disabled after failures, and their statistics. */
export function createProwlarrTarget(spec: TargetSpec): MediaTarget {
  const client = new ArrClient(spec, 'v1');
  return {
    spec,
    async poll(signal) {
      const [status, health, indexers, statuses, stats] = await Promise.all([
        client.get('/system/status', SystemStatusShape, signal),
        client.get('/health', HealthShape, signal),
        client.get('/indexer', IndexersShape, signal),
        client.get('/indexerstatus', IndexerStatusShape, signal),
        client.get('/indexerstats', IndexerStatsShape, signal),
      ]);
      const names = new Map(indexers.map((i) => [i.id, i.name]));
      const library: MediaProwlarrLibrary = {
        source: spec.name, kind: 'prowlarr', at: nowIso(), version: status.version, health: healthIssues(health),
        indexers: {
          total: indexers.length,
          enabled: indexers.filter((i) => i.enable).length,
          failing: statuses.map((s) => ({
            id: s.indexerId, name: names.get(s.indexerId) ?? `#${s.indexerId}`,
            ...(s.disabledTill && { disabledTill: s.disabledTill }), ...(s.mostRecentFailure && { mostRecentFailure: s.mostRecentFailure }),
          })),
        },
        stats: stats.indexers.map((s) => ({
          indexerId: s.indexerId, name: s.indexerName, averageResponseTimeMs: s.averageResponseTime ?? 0,
          queries: s.numberOfQueries ?? 0, grabs: s.numberOfGrabs ?? 0, failedQueries: s.numberOfFailedQueries ?? 0, failedGrabs: s.numberOfFailedGrabs ?? 0,
        })),
      };
      return { snapshots: [{ key: 'mediaLibrary', payload: library }] };
    },
  };
}
