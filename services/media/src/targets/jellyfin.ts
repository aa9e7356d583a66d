import { Type, type Static } from '@sinclair/typebox';
import type { MediaJellyfinLibrary, MediaSessionsSnapshot, MediaStream } from '@homelab/bus';
import { MediaError } from '../errors.ts';
import { HttpClient, shape } from '../http.ts';
import { nowIso, type MediaTarget, type TargetSpec } from './types.ts';

/*
 * Jellyfin (10.8+): PascalCase JSON; the API key goes in `Authorization: MediaBrowser Token="…"`
 * (the legacy `X-Emby-Token` is off by default from 12.0). Active sessions are the ones seen in the
 * last 16 minutes; a stream is a session with a `NowPlayingItem`.
 */

/** The device id this service announces; its own session (if Jellyfin lists one) is not a viewer. */
export const OWN_DEVICE_ID = 'homelab-gateway-media';

const Open = { additionalProperties: true } as const;
const OptStr = Type.Optional(Type.Union([Type.String(), Type.Null()]));
const PublicInfoShape = shape(Type.Object({ ServerName: OptStr, Version: OptStr, Id: OptStr }, Open));
const Session = Type.Object({
  Id: Type.String(),
  UserName: OptStr,
  Client: OptStr,
  DeviceName: OptStr,
  DeviceId: OptStr,
  NowPlayingItem: Type.Optional(Type.Union([Type.Null(), Type.Object({
    Id: Type.String(), Name: OptStr, Type: OptStr, SeriesName: OptStr, ParentIndexNumber: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
    IndexNumber: Type.Optional(Type.Union([Type.Integer(), Type.Null()])), RunTimeTicks: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
  }, Open)])),
  PlayState: Type.Optional(Type.Union([Type.Null(), Type.Object({
    PositionTicks: Type.Optional(Type.Union([Type.Number(), Type.Null()])), IsPaused: Type.Optional(Type.Boolean()), PlayMethod: Type.Optional(Type.Union([Type.String(), Type.Integer(), Type.Null()])),
  }, Open)])),
  TranscodingInfo: Type.Optional(Type.Union([Type.Null(), Type.Object({
    VideoCodec: OptStr, AudioCodec: OptStr, Container: OptStr, IsVideoDirect: Type.Optional(Type.Boolean()), IsAudioDirect: Type.Optional(Type.Boolean()),
    Bitrate: Type.Optional(Type.Union([Type.Number(), Type.Null()])), HardwareAccelerationType: OptStr, TranscodeReasons: Type.Optional(Type.Union([Type.Array(Type.String()), Type.String(), Type.Null()])),
  }, Open)])),
}, Open);
type JellyfinSession = Static<typeof Session>;
const SessionsShape = shape(Type.Array(Session));
const CountsShape = shape(Type.Record(Type.String(), Type.Union([Type.Number(), Type.String(), Type.Boolean(), Type.Null()])));

/** Jellyfin's PlayMethod enum, when serialised as a number. */
const PLAY_METHODS = ['Transcode', 'DirectStream', 'DirectPlay'];

export function playMethodName(value: unknown): string | undefined {
  if (typeof value === 'number') return PLAY_METHODS[value];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Jellyfin ids are Guids: `N` format in the API, `D` format in the webhook plugin. One spelling for both. */
export function normalizeJellyfinId(id: string): string {
  return id.replace(/-/g, '').toLowerCase();
}

export function streamKey(deviceId: string, itemId: string): string {
  return `${deviceId}:${normalizeJellyfinId(itemId)}`;
}

const str = (v: string | null | undefined): string | undefined => (v === null || v === undefined || v === '' ? undefined : v);
const int = (v: number | null | undefined): number | undefined => (typeof v === 'number' ? v : undefined);

export function sessionStream(s: JellyfinSession): MediaStream | undefined {
  const item = s.NowPlayingItem;
  if (!item) return undefined;
  const deviceId = str(s.DeviceId) ?? s.Id;
  const t = s.TranscodingInfo;
  const playMethod = playMethodName(s.PlayState?.PlayMethod);
  const reasons = t?.TranscodeReasons;
  return {
    key: streamKey(deviceId, item.Id), sessionId: s.Id, deviceId,
    ...(str(s.DeviceName) && { deviceName: s.DeviceName! }), ...(str(s.Client) && { client: s.Client! }), ...(str(s.UserName) && { user: s.UserName! }),
    item: {
      id: normalizeJellyfinId(item.Id), name: str(item.Name) ?? '(unnamed)', type: str(item.Type) ?? 'Unknown',
      ...(str(item.SeriesName) && { seriesName: item.SeriesName! }), ...(int(item.ParentIndexNumber) !== undefined && { seasonNumber: item.ParentIndexNumber! }),
      ...(int(item.IndexNumber) !== undefined && { episodeNumber: item.IndexNumber! }), ...(int(item.RunTimeTicks) !== undefined && { runTimeTicks: item.RunTimeTicks! }),
    },
    ...(playMethod && { playMethod }),
    isPaused: s.PlayState?.IsPaused ?? false,
    ...(int(s.PlayState?.PositionTicks) !== undefined && { positionTicks: s.PlayState!.PositionTicks! }),
    ...(t && {
      transcoding: {
        ...(str(t.VideoCodec) && { videoCodec: t.VideoCodec! }), ...(str(t.AudioCodec) && { audioCodec: t.AudioCodec! }), ...(str(t.Container) && { container: t.Container! }),
        ...(t.IsVideoDirect !== undefined && { isVideoDirect: t.IsVideoDirect }), ...(t.IsAudioDirect !== undefined && { isAudioDirect: t.IsAudioDirect }),
        ...(int(t.Bitrate) !== undefined && { bitrate: t.Bitrate! }), ...(str(t.HardwareAccelerationType) && { hardwareAcceleration: t.HardwareAccelerationType! }),
        reasons: Array.isArray(reasons) ? reasons : typeof reasons === 'string' && reasons ? reasons.split(',') : [],
      },
    }),
  };
}

const camel = (key: string): string => key.charAt(0).toLowerCase() + key.slice(1);

export function createJellyfinTarget(spec: TargetSpec): MediaTarget {
  if (!spec.apiKey) throw new MediaError('config', `${spec.name}: no API key (JELLYFIN_API_KEY)`);
  const authorization = `MediaBrowser Token="${spec.apiKey}", Client="Homelab Gateway", Device="media-service", DeviceId="${OWN_DEVICE_ID}", Version="0.1.0"`;
  const http = new HttpClient({ baseUrl: spec.url, timeoutMs: spec.timeoutMs, maxBytes: spec.maxResponseBytes, headers: { authorization } });
  return {
    spec,
    async poll(signal) {
      const [info, sessions, counts] = await Promise.all([
        http.json('System/Info/Public', PublicInfoShape, { signal }),
        http.json('Sessions', SessionsShape, { signal, query: { activeWithinSeconds: 960 } }),
        http.json('Items/Counts', CountsShape, { signal }),
      ]);
      const at = nowIso();
      const viewers = sessions.filter((s) => s.DeviceId !== OWN_DEVICE_ID);
      const streams = viewers.map(sessionStream).filter((s): s is MediaStream => s !== undefined);
      const library: MediaJellyfinLibrary = {
        source: spec.name, kind: 'jellyfin', at, ...(str(info.Version) && { version: info.Version! }), ...(str(info.ServerName) && { serverName: info.ServerName! }),
        counts: Object.fromEntries(Object.entries(counts).filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isInteger(e[1])).map(([k, v]) => [camel(k), v])),
      };
      const snapshot: MediaSessionsSnapshot = { source: spec.name, kind: 'jellyfin', at, sessions: viewers.length, streams };
      return { snapshots: [{ key: 'mediaLibrary', payload: library }, { key: 'mediaSessions', payload: snapshot }], streams };
    },
  };
}
