import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { applyMediaFaults, requestUrl, sendMediaJson, sendText, type MediaSimFaults } from './media-sim.ts';
import { startSimServer, type SimContext, type SimOptions, type Simulator } from './sim.ts';

/*
 * Jellyfin 10.10/10.11 as its API answers: PascalCase JSON, `Authorization: MediaBrowser Token="…"`
 * (legacy `X-Emby-Token` / `X-MediaBrowser-Token` accepted while legacy auth is on, as in 10.11),
 * an empty 401 without a valid token, `/health` and `/System/Info/Public` open.
 */

export interface JellyfinSimOptions extends Omit<SimOptions, 'models' | 'tokens' | 'tokenIntervalMs'> {
  apiKey: string;
  version?: string;
  serverName?: string;
  /** Accept `X-Emby-Token` (default true, as 10.11 does). */
  legacyAuth?: boolean;
  faults?: MediaSimFaults;
}

export interface JellyfinPlayInput {
  deviceId: string;
  deviceName?: string;
  client?: string;
  userName?: string;
  item: { id?: string; name: string; type?: 'Movie' | 'Episode' | 'Audio' | 'MusicVideo' | 'TvChannel'; seriesName?: string; seasonNumber?: number; episodeNumber?: number; runTimeTicks?: number };
  playMethod?: 'DirectPlay' | 'DirectStream' | 'Transcode';
  isPaused?: boolean;
  positionTicks?: number;
  transcoding?: { videoCodec?: string; audioCodec?: string; container?: string; isVideoDirect?: boolean; isAudioDirect?: boolean; bitrate?: number; transcodeReasons?: string[]; hardwareAccelerationType?: string };
}

export interface JellyfinSimulator extends Simulator {
  setFaults(faults: MediaSimFaults): void;
  /** A session for a device (created when new); returns the session id. */
  addSession(input: { deviceId: string; deviceName?: string; client?: string; userName?: string }): string;
  /** Starts playback on a device (its session created when needed); returns the item id (32 hex, Jellyfin's `N` format). */
  play(input: JellyfinPlayInput): { sessionId: string; itemId: string };
  /** The device stops playing (its session stays). */
  stop(deviceId: string): void;
  setCounts(counts: Partial<Record<string, number>>): void;
  /** The raw sessions as `/Sessions` returns them. */
  sessions(): Record<string, unknown>[];
}

export const JELLYFIN_SIM_VERSION = '10.11.2';
const SERVER_ID = '6f1c2a7b9d0e4f3a8b5c1d2e3f4a5b6c';

interface SessionState {
  Id: string;
  DeviceId: string;
  DeviceName: string;
  Client: string;
  UserName: string;
  UserId: string;
  playing?: JellyfinPlayInput & { itemId: string };
  LastActivityDate: string;
}

export async function startJellyfinSimulator(options: JellyfinSimOptions): Promise<JellyfinSimulator> {
  const version = options.version ?? JELLYFIN_SIM_VERSION;
  const sessions = new Map<string, SessionState>();
  let counts: Record<string, number> = {
    MovieCount: 412, SeriesCount: 57, EpisodeCount: 2316, ArtistCount: 0, ProgramCount: 0, TrailerCount: 0, SongCount: 1804,
    AlbumCount: 143, MusicVideoCount: 0, BoxSetCount: 12, BookCount: 31, ItemCount: 4775,
  };

  const token = (req: IncomingMessage): string | undefined => {
    const auth = req.headers.authorization ?? (req.headers['x-emby-authorization'] as string | undefined);
    const m = auth ? /^MediaBrowser\s+(.*)$/i.exec(auth) : null;
    if (m) {
      const t = /(?:^|,)\s*Token="([^"]*)"/i.exec(m[1]!);
      if (t) return t[1];
    }
    if (options.legacyAuth ?? true) return (req.headers['x-emby-token'] as string | undefined) ?? (req.headers['x-mediabrowser-token'] as string | undefined);
    return undefined;
  };

  const sessionJson = (s: SessionState): Record<string, unknown> => {
    const base: Record<string, unknown> = {
      PlayState: { CanSeek: false, IsPaused: false, IsMuted: false, RepeatMode: 'RepeatNone', PlaybackOrder: 'Default' },
      AdditionalUsers: [], Capabilities: { PlayableMediaTypes: ['Audio', 'Video'], SupportedCommands: [], SupportsMediaControl: true, SupportsPersistentIdentifier: true },
      RemoteEndPoint: '192.168.1.50', PlayableMediaTypes: ['Audio', 'Video'], Id: s.Id, UserId: s.UserId, UserName: s.UserName, Client: s.Client,
      LastActivityDate: s.LastActivityDate, LastPlaybackCheckIn: s.LastActivityDate, DeviceName: s.DeviceName, DeviceId: s.DeviceId,
      ApplicationVersion: '10.11.2', IsActive: true, SupportsMediaControl: true, SupportsRemoteControl: true, NowPlayingQueue: [], NowPlayingQueueFullItems: [],
      HasCustomDeviceName: false, ServerId: SERVER_ID, SupportedCommands: [],
    };
    const p = s.playing;
    if (!p) return base;
    base['NowPlayingItem'] = {
      Name: p.item.name, ServerId: SERVER_ID, Id: p.itemId, Type: p.item.type ?? 'Movie', MediaType: p.item.type === 'Audio' ? 'Audio' : 'Video',
      RunTimeTicks: p.item.runTimeTicks ?? 72_000_000_000, IsFolder: false,
      ...(p.item.seriesName && { SeriesName: p.item.seriesName, ParentIndexNumber: p.item.seasonNumber ?? 1, IndexNumber: p.item.episodeNumber ?? 1 }),
    };
    base['PlayState'] = {
      PositionTicks: p.positionTicks ?? 12_000_000_000, CanSeek: true, IsPaused: p.isPaused ?? false, IsMuted: false, VolumeLevel: 100,
      AudioStreamIndex: 1, SubtitleStreamIndex: -1, MediaSourceId: p.itemId, PlayMethod: p.playMethod ?? 'DirectPlay', RepeatMode: 'RepeatNone', PlaybackOrder: 'Default',
    };
    if ((p.playMethod ?? 'DirectPlay') === 'Transcode') {
      const t = p.transcoding ?? {};
      base['TranscodingInfo'] = {
        AudioCodec: t.audioCodec ?? 'aac', VideoCodec: t.videoCodec ?? 'h264', Container: t.container ?? 'ts', IsVideoDirect: t.isVideoDirect ?? false,
        IsAudioDirect: t.isAudioDirect ?? false, Bitrate: t.bitrate ?? 8_000_000, Framerate: 23.976, CompletionPercentage: 12.5, Width: 1920, Height: 1080,
        AudioChannels: 2, HardwareAccelerationType: t.hardwareAccelerationType ?? 'vaapi', TranscodeReasons: t.transcodeReasons ?? ['VideoCodecNotSupported'],
      };
    }
    return base;
  };

  const handler = async (req: IncomingMessage, res: ServerResponse, ctx: SimContext): Promise<void> => {
    const url = requestUrl(req);
    if (await applyMediaFaults(res, ctx, () => undefined)) return;
    const path = url.pathname.toLowerCase();
    if (path === '/health') return sendText(res, 200, 'Healthy');
    if (path === '/system/info/public') {
      return sendMediaJson(res, ctx, 200, {
        LocalAddress: `http://127.0.0.1:${sim.port}`, ServerName: options.serverName ?? 'media-node', Version: version, ProductName: 'Jellyfin Server',
        OperatingSystem: '', Id: SERVER_ID, StartupWizardCompleted: true,
      });
    }
    if (path === '/' || path.startsWith('/web')) return sendText(res, 200, '<!DOCTYPE html><html><head><title>Jellyfin</title></head><body></body></html>', 'text/html');
    if (token(req) !== options.apiKey) {
      res.writeHead(401, { 'content-length': '0' });
      res.end();
      return;
    }
    if (path === '/sessions') return sendMediaJson(res, ctx, 200, [...sessions.values()].map(sessionJson));
    if (path === '/items/counts') return sendMediaJson(res, ctx, 200, counts);
    if (path === '/system/info') return sendMediaJson(res, ctx, 200, { ServerName: options.serverName ?? 'media-node', Version: version, Id: SERVER_ID, OperatingSystem: 'Linux' });
    res.writeHead(404, { 'content-length': '0' });
    res.end();
  };

  const base = await startSimServer(options, handler);
  const ensureSession = (input: { deviceId: string; deviceName?: string; client?: string; userName?: string }): SessionState => {
    let s = sessions.get(input.deviceId);
    if (!s) {
      s = {
        Id: randomUUID().replace(/-/g, ''), DeviceId: input.deviceId, DeviceName: input.deviceName ?? 'Living Room TV', Client: input.client ?? 'Jellyfin Android TV',
        UserName: input.userName ?? 'alice', UserId: randomUUID().replace(/-/g, ''), LastActivityDate: new Date().toISOString(),
      };
      sessions.set(input.deviceId, s);
    }
    return s;
  };
  const sim: JellyfinSimulator = {
    ...base,
    setFaults: (f) => base.setFaults(f),
    addSession: (input) => ensureSession(input).Id,
    play(input) {
      const s = ensureSession(input);
      const itemId = (input.item.id ?? randomUUID()).replace(/-/g, '').toLowerCase();
      s.playing = { ...input, itemId };
      s.LastActivityDate = new Date().toISOString();
      return { sessionId: s.Id, itemId };
    },
    stop(deviceId) {
      const s = sessions.get(deviceId);
      if (s) delete s.playing;
    },
    setCounts(c) { counts = { ...counts, ...c } as Record<string, number>; },
    sessions: () => [...sessions.values()].map(sessionJson),
  };
  return sim;
}
