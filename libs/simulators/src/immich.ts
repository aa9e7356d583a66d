import type { IncomingMessage, ServerResponse } from 'node:http';
import { applyMediaFaults, requestUrl, sendMediaJson, type MediaSimFaults } from './media-sim.ts';
import { startSimServer, type SimContext, type SimOptions, type Simulator } from './sim.ts';

/*
 * Immich (v1.1xx / v2) server endpoints under /api: `x-api-key`, NestJS-style errors
 * `{"message","error","statusCode","correlationId"}`; statistics need an admin key.
 */

export interface ImmichSimOptions extends Omit<SimOptions, 'models' | 'tokens' | 'tokenIntervalMs'> {
  apiKey: string;
  /** A key that is valid but not an admin's: `/server/statistics` answers 403 to it. */
  userApiKey?: string;
  version?: { major: number; minor: number; patch: number };
  faults?: MediaSimFaults;
}

export interface ImmichUserUsage { userId: string; userName: string; photos: number; videos: number; usage: number; usagePhotos: number; usageVideos: number; quotaSizeInBytes: number | null }

export interface ImmichSimulator extends Simulator {
  setFaults(faults: MediaSimFaults): void;
  setUsers(users: ImmichUserUsage[]): void;
  setDisk(disk: { sizeRaw: number; useRaw: number }): void;
}

/** Immich's human-readable sizes (`asHumanReadable`: binary units, one decimal). */
function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export async function startImmichSimulator(options: ImmichSimOptions): Promise<ImmichSimulator> {
  const version = options.version ?? { major: 1, minor: 135, patch: 3 };
  let users: ImmichUserUsage[] = [
    { userId: '0b8e6a4c-3f2d-4d8e-9c1a-7e5f2b3c4d5e', userName: 'alice', photos: 10_234, videos: 512, usage: 98_000_000_000, usagePhotos: 61_000_000_000, usageVideos: 37_000_000_000, quotaSizeInBytes: null },
    { userId: '1c9f7b5d-4e3f-4e9f-8d2b-8f6a3c4d5e6f', userName: 'bob', photos: 2_048, videos: 64, usage: 15_500_000_000, usagePhotos: 11_000_000_000, usageVideos: 4_500_000_000, quotaSizeInBytes: 200_000_000_000 },
  ];
  let disk = { sizeRaw: 3_998_614_495_232, useRaw: 1_154_243_428_352 };

  const error = (status: number, message: string) => ({
    message, error: status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : status >= 500 ? 'Internal Server Error' : 'Bad Request', statusCode: status,
    correlationId: Math.random().toString(36).slice(2, 10),
  });

  const handler = async (req: IncomingMessage, res: ServerResponse, ctx: SimContext): Promise<void> => {
    const url = requestUrl(req);
    if (await applyMediaFaults(res, ctx, (status) => error(status, 'simulated fault'))) return;
    if (url.pathname === '/api/server/ping') return sendMediaJson(res, ctx, 200, { res: 'pong' });
    if (url.pathname === '/api/server/version') return sendMediaJson(res, ctx, 200, version);
    if (!url.pathname.startsWith('/api/')) {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><html><head><title>Immich</title></head><body></body></html>');
      return;
    }
    const key = req.headers['x-api-key'];
    const isAdmin = key === options.apiKey;
    if (!isAdmin && (key === undefined || key !== options.userApiKey)) return sendMediaJson(res, ctx, 401, error(401, key === undefined ? 'Authentication required' : 'Invalid API key'));
    if (url.pathname === '/api/server/statistics') {
      if (!isAdmin) return sendMediaJson(res, ctx, 403, error(403, 'Forbidden'));
      const sum = (f: (u: ImmichUserUsage) => number) => users.reduce((acc, u) => acc + f(u), 0);
      return sendMediaJson(res, ctx, 200, {
        photos: sum((u) => u.photos), videos: sum((u) => u.videos), usage: sum((u) => u.usage), usagePhotos: sum((u) => u.usagePhotos), usageVideos: sum((u) => u.usageVideos),
        usageByUser: users,
      });
    }
    if (url.pathname === '/api/server/storage') {
      const available = disk.sizeRaw - disk.useRaw;
      return sendMediaJson(res, ctx, 200, {
        diskSize: human(disk.sizeRaw), diskUse: human(disk.useRaw), diskAvailable: human(available),
        diskSizeRaw: disk.sizeRaw, diskUseRaw: disk.useRaw, diskAvailableRaw: available, diskUsagePercentage: Math.round((disk.useRaw / disk.sizeRaw) * 10_000) / 100,
      });
    }
    return sendMediaJson(res, ctx, 404, error(404, `Cannot ${req.method} ${url.pathname}`));
  };

  const base = await startSimServer(options, handler);
  return {
    ...base,
    setFaults: (f) => base.setFaults(f),
    setUsers(u) { users = u; },
    setDisk(d) { disk = d; },
  };
}
