import { Type } from '@sinclair/typebox';
import type { MediaImmichLibrary } from '@homelab/bus';
import { MediaError } from '../errors.ts';
import { HttpClient, shape } from '../http.ts';
import { nowIso, type MediaTarget, type TargetSpec } from './types.ts';

/*
 * Immich (v1.118+ / v2): everything under /api, the key in `x-api-key`. `server/statistics` needs an
 * admin's key (a user's key gets 403, reported as `auth`).
 */

const Open = { additionalProperties: true } as const;
const PingShape = shape(Type.Object({ res: Type.Literal('pong') }, Open));
const VersionShape = shape(Type.Object({ major: Type.Integer(), minor: Type.Integer(), patch: Type.Integer() }, Open));
const StatisticsShape = shape(Type.Object({
  photos: Type.Integer(), videos: Type.Integer(), usage: Type.Number(), usagePhotos: Type.Optional(Type.Number()), usageVideos: Type.Optional(Type.Number()),
  usageByUser: Type.Array(Type.Object({
    userId: Type.String(), userName: Type.String(), photos: Type.Integer(), videos: Type.Integer(), usage: Type.Number(),
    quotaSizeInBytes: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
  }, Open)),
}, Open));
const StorageShape = shape(Type.Object({ diskSizeRaw: Type.Number(), diskUseRaw: Type.Number(), diskAvailableRaw: Type.Number(), diskUsagePercentage: Type.Number() }, Open));

export function createImmichTarget(spec: TargetSpec): MediaTarget {
  if (!spec.apiKey) throw new MediaError('config', `${spec.name}: no API key (IMMICH_API_KEY)`);
  const http = new HttpClient({ baseUrl: spec.url, timeoutMs: spec.timeoutMs, maxBytes: spec.maxResponseBytes, headers: { 'x-api-key': spec.apiKey } });
  return {
    spec,
    async poll(signal) {
      const [, version, stats, storage] = await Promise.all([
        http.json('api/server/ping', PingShape, { signal }),
        http.json('api/server/version', VersionShape, { signal }),
        http.json('api/server/statistics', StatisticsShape, { signal }),
        http.json('api/server/storage', StorageShape, { signal }),
      ]);
      const library: MediaImmichLibrary = {
        source: spec.name, kind: 'immich', at: nowIso(), version: `${version.major}.${version.minor}.${version.patch}`,
        photos: stats.photos, videos: stats.videos, usageBytes: stats.usage,
        ...(stats.usagePhotos !== undefined && { usagePhotosBytes: stats.usagePhotos }), ...(stats.usageVideos !== undefined && { usageVideosBytes: stats.usageVideos }),
        users: stats.usageByUser.map((u) => ({ userId: u.userId, userName: u.userName, photos: u.photos, videos: u.videos, usageBytes: u.usage, quotaBytes: u.quotaSizeInBytes ?? null })),
        disk: { sizeBytes: storage.diskSizeRaw, usedBytes: storage.diskUseRaw, availableBytes: storage.diskAvailableRaw, usagePercent: storage.diskUsagePercentage },
      };
      return { snapshots: [{ key: 'mediaLibrary', payload: library }] };
    },
  };
}
