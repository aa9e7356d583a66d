import { Type, type Static, type TSchema } from '@sinclair/typebox';

/*
 * Payloads of the media service's events (stream MEDIA) and of its `media.status` reply.
 * docs/media.md shows an example of each. Objects are open (`additionalProperties: true`) so the
 * media service can add a field without breaking a consumer that validates with an older copy.
 */

const Open = { additionalProperties: true } as const;
const Opt = <T extends TSchema>(t: T) => Type.Optional(t);
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Bytes = Type.Number({ minimum: 0, description: 'bytes' });
const Iso = Type.String({ description: 'ISO-8601 timestamp' });

export const MediaKinds = ['sonarr', 'radarr', 'prowlarr', 'qbittorrent', 'jellyfin', 'immich'] as const;
export type MediaKind = (typeof MediaKinds)[number];
export const MediaKindSchema = Type.Union(MediaKinds.map((k) => Type.Literal(k)));
/** Where a fact came from: a polled target kind, or the media node's own storage. */
export const MediaSourceKindSchema = Type.Union([...MediaKinds.map((k) => Type.Literal(k)), Type.Literal('storage')]);

/** Why a poll (or a storage check) failed; stable codes that scripts can switch on. */
export const MediaErrorReasons = [
  'auth', 'banned', 'unreachable', 'timeout', 'http', 'invalid_json', 'not_json', 'invalid_response', 'too_large', 'missing_path', 'config',
] as const;
export type MediaErrorReason = (typeof MediaErrorReasons)[number];
export const MediaErrorReasonSchema = Type.Union(MediaErrorReasons.map((r) => Type.Literal(r)));

// ---------------------------------------------------------------- snapshots

export const MediaQueueItemSchema = Type.Object({
  /** The download client's id (a torrent's info hash, lower-cased); null for items not sent to a client yet (`delay`). */
  downloadId: Nullable(Type.String()),
  title: Type.String(),
  /** Sonarr/Radarr `status`: unknown, queued, paused, downloading, completed, failed, warning, delay, downloadClientUnavailable, fallback. */
  status: Type.String(),
  trackedDownloadStatus: Opt(Type.String()),
  trackedDownloadState: Opt(Type.String()),
  /** The gateway's reading of the item: downloading, completed (import pending), imported, failed, or waiting (delay/queued without a client). */
  phase: Type.Union([Type.Literal('waiting'), Type.Literal('downloading'), Type.Literal('completed'), Type.Literal('imported'), Type.Literal('failed')]),
  progress: Type.Number({ minimum: 0, maximum: 1 }),
  size: Bytes,
  sizeLeft: Bytes,
  timeLeft: Opt(Type.String()),
  estimatedCompletionTime: Opt(Iso),
  protocol: Opt(Type.String()),
  downloadClient: Opt(Type.String()),
  indexer: Opt(Type.String()),
  quality: Opt(Type.String()),
  errorMessage: Opt(Type.String()),
  /** Status messages, flattened (`title: message`). */
  messages: Opt(Type.Array(Type.String())),
  seriesId: Opt(Type.Integer()),
  movieId: Opt(Type.Integer()),
  /** Queue records merged into this item (a season pack has one per episode). */
  records: Type.Integer({ minimum: 1 }),
}, Open);
export type MediaQueueItem = Static<typeof MediaQueueItemSchema>;

/** `media.queue`: one Sonarr or Radarr queue, all pages, grouped by download. */
export const MediaQueueSnapshotSchema = Type.Object({
  source: Type.String(),
  kind: Type.Union([Type.Literal('sonarr'), Type.Literal('radarr')]),
  at: Iso,
  /** Records the queue reported (`totalRecords`). */
  totalRecords: Type.Integer({ minimum: 0 }),
  /** True when the queue had more records than `media.maxQueueRecords` or items than `media.snapshotMaxItems`. */
  truncated: Type.Boolean(),
  status: Opt(Type.Object({
    totalCount: Type.Integer(), count: Type.Integer(), unknownCount: Type.Integer(),
    errors: Type.Boolean(), warnings: Type.Boolean(), unknownErrors: Type.Boolean(), unknownWarnings: Type.Boolean(),
  }, Open)),
  items: Type.Array(MediaQueueItemSchema),
}, Open);
export type MediaQueueSnapshot = Static<typeof MediaQueueSnapshotSchema>;

export const MediaTorrentSchema = Type.Object({
  hash: Type.String(),
  name: Type.String(),
  /** qBittorrent's state (uploading, stalledUP, downloading, pausedDL, error, missingFiles, …). */
  state: Type.String(),
  phase: Type.Union([Type.Literal('downloading'), Type.Literal('completed'), Type.Literal('failed')]),
  progress: Type.Number({ minimum: 0, maximum: 1 }),
  size: Bytes,
  amountLeft: Bytes,
  dlSpeed: Type.Number(),
  upSpeed: Type.Number(),
  /** Seconds; 8640000 is qBittorrent's "infinity". */
  eta: Type.Number(),
  category: Type.String(),
  tags: Type.String(),
  savePath: Type.String(),
  ratio: Type.Number(),
  addedOn: Opt(Iso),
  completionOn: Opt(Iso),
  numSeeds: Type.Integer(),
  numLeechs: Type.Integer(),
}, Open);
export type MediaTorrent = Static<typeof MediaTorrentSchema>;

/** `media.transfer`: qBittorrent's transfer state and torrents (tracker URLs, which carry passkeys, are never included). */
export const MediaTransferSnapshotSchema = Type.Object({
  source: Type.String(),
  kind: Type.Literal('qbittorrent'),
  at: Iso,
  version: Opt(Type.String()),
  connectionStatus: Type.String(),
  dlSpeed: Type.Number(),
  upSpeed: Type.Number(),
  dlData: Type.Number(),
  upData: Type.Number(),
  dlRateLimit: Type.Number(),
  upRateLimit: Type.Number(),
  dhtNodes: Type.Integer(),
  freeSpaceOnDisk: Opt(Type.Number()),
  counts: Type.Object({
    total: Type.Integer(), downloading: Type.Integer(), seeding: Type.Integer(), paused: Type.Integer(), checking: Type.Integer(), errored: Type.Integer(),
  }, Open),
  truncated: Type.Boolean(),
  /** Active torrents first (downloading, then uploading), at most `media.snapshotMaxItems`. */
  torrents: Type.Array(MediaTorrentSchema),
}, Open);
export type MediaTransferSnapshot = Static<typeof MediaTransferSnapshotSchema>;

export const MediaHealthIssueSchema = Type.Object({
  source: Type.String(), type: Type.String(), message: Type.String(), wikiUrl: Opt(Type.String()),
}, Open);
export type MediaHealthIssue = Static<typeof MediaHealthIssueSchema>;

const LibraryBase = {
  source: Type.String(),
  at: Iso,
  version: Opt(Type.String()),
};

export const MediaArrLibrarySchema = Type.Object({
  ...LibraryBase,
  kind: Type.Union([Type.Literal('sonarr'), Type.Literal('radarr')]),
  instanceName: Opt(Type.String()),
  startTime: Opt(Iso),
  health: Type.Array(MediaHealthIssueSchema),
  /** Monitored episodes/movies without a file (`wanted/missing` totalRecords); null when the version cannot tell. */
  missing: Nullable(Type.Integer()),
  /** Files below the quality cutoff (`wanted/cutoff` totalRecords); null when unknown. */
  cutoffUnmet: Nullable(Type.Integer()),
  diskSpace: Type.Array(Type.Object({ path: Type.String(), label: Type.String(), freeBytes: Bytes, totalBytes: Bytes }, Open)),
}, Open);

export const MediaProwlarrLibrarySchema = Type.Object({
  ...LibraryBase,
  kind: Type.Literal('prowlarr'),
  health: Type.Array(MediaHealthIssueSchema),
  indexers: Type.Object({
    total: Type.Integer(),
    enabled: Type.Integer(),
    /** Indexers Prowlarr disabled after failures (`indexerstatus`). */
    failing: Type.Array(Type.Object({ id: Type.Integer(), name: Type.String(), disabledTill: Opt(Iso), mostRecentFailure: Opt(Iso) }, Open)),
  }, Open),
  stats: Type.Array(Type.Object({
    indexerId: Type.Integer(), name: Type.String(), averageResponseTimeMs: Type.Number(),
    queries: Type.Integer(), grabs: Type.Integer(), failedQueries: Type.Integer(), failedGrabs: Type.Integer(),
  }, Open)),
}, Open);

export const MediaJellyfinLibrarySchema = Type.Object({
  ...LibraryBase,
  kind: Type.Literal('jellyfin'),
  serverName: Opt(Type.String()),
  /** `/Items/Counts`, keys camel-cased: movieCount, seriesCount, episodeCount, songCount, albumCount, bookCount, itemCount, … */
  counts: Type.Record(Type.String(), Type.Integer()),
}, Open);

export const MediaImmichLibrarySchema = Type.Object({
  ...LibraryBase,
  kind: Type.Literal('immich'),
  photos: Type.Integer(),
  videos: Type.Integer(),
  usageBytes: Bytes,
  usagePhotosBytes: Opt(Bytes),
  usageVideosBytes: Opt(Bytes),
  users: Type.Array(Type.Object({
    userId: Type.String(), userName: Type.String(), photos: Type.Integer(), videos: Type.Integer(), usageBytes: Bytes, quotaBytes: Nullable(Type.Number()),
  }, Open)),
  disk: Opt(Type.Object({ sizeBytes: Bytes, usedBytes: Bytes, availableBytes: Bytes, usagePercent: Type.Number() }, Open)),
}, Open);

/** `media.library`: what each service holds; one message per target, shaped by `kind`. */
export const MediaLibrarySnapshotSchema = Type.Union([MediaArrLibrarySchema, MediaProwlarrLibrarySchema, MediaJellyfinLibrarySchema, MediaImmichLibrarySchema]);
export type MediaLibrarySnapshot = Static<typeof MediaLibrarySnapshotSchema>;
export type MediaArrLibrary = Static<typeof MediaArrLibrarySchema>;
export type MediaProwlarrLibrary = Static<typeof MediaProwlarrLibrarySchema>;
export type MediaJellyfinLibrary = Static<typeof MediaJellyfinLibrarySchema>;
export type MediaImmichLibrary = Static<typeof MediaImmichLibrarySchema>;

export const MediaPlayItemSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  type: Type.String(),
  seriesName: Opt(Type.String()),
  seasonNumber: Opt(Type.Integer()),
  episodeNumber: Opt(Type.Integer()),
  runTimeTicks: Opt(Type.Number()),
}, Open);

export const MediaTranscodingSchema = Type.Object({
  videoCodec: Opt(Type.String()),
  audioCodec: Opt(Type.String()),
  container: Opt(Type.String()),
  isVideoDirect: Opt(Type.Boolean()),
  isAudioDirect: Opt(Type.Boolean()),
  bitrate: Opt(Type.Number()),
  hardwareAcceleration: Opt(Type.String()),
  reasons: Type.Array(Type.String()),
}, Open);

/** One playback: a device playing an item. `key` is `<deviceId>:<itemId>`. */
export const MediaStreamSchema = Type.Object({
  key: Type.String(),
  sessionId: Opt(Type.String()),
  deviceId: Type.String(),
  deviceName: Opt(Type.String()),
  client: Opt(Type.String()),
  user: Opt(Type.String()),
  item: MediaPlayItemSchema,
  /** DirectPlay, DirectStream or Transcode. */
  playMethod: Opt(Type.String()),
  isPaused: Opt(Type.Boolean()),
  positionTicks: Opt(Type.Number()),
  transcoding: Opt(MediaTranscodingSchema),
}, Open);
export type MediaStream = Static<typeof MediaStreamSchema>;

/** `media.sessions`: Jellyfin's active sessions and what they play. */
export const MediaSessionsSnapshotSchema = Type.Object({
  source: Type.String(),
  kind: Type.Literal('jellyfin'),
  at: Iso,
  /** Sessions active in the last 16 minutes (playing or not). */
  sessions: Type.Integer({ minimum: 0 }),
  streams: Type.Array(MediaStreamSchema),
}, Open);
export type MediaSessionsSnapshot = Static<typeof MediaSessionsSnapshotSchema>;

export const MediaPathUsageSchema = Type.Object({
  path: Type.String(),
  ok: Type.Boolean(),
  /** Why the path could not be measured: `missing`, `permission`, or the system error code. */
  error: Opt(Type.String()),
  totalBytes: Opt(Bytes),
  usedBytes: Opt(Bytes),
  /** Available to unprivileged users (statfs `bavail`), as `df` reports. */
  freeBytes: Opt(Bytes),
  usedPercent: Opt(Type.Number()),
  freePercent: Opt(Type.Number()),
  /** Below the low-space threshold now. */
  low: Type.Boolean(),
}, Open);
export type MediaPathUsage = Static<typeof MediaPathUsageSchema>;

/** `media.storage`: usage of every path in `media.paths`. */
export const MediaStorageSnapshotSchema = Type.Object({
  at: Iso,
  thresholds: Type.Object({ freePercent: Type.Number(), freeBytes: Opt(Bytes), hysteresisPercent: Type.Number() }, Open),
  paths: Type.Array(MediaPathUsageSchema),
}, Open);
export type MediaStorageSnapshot = Static<typeof MediaStorageSnapshotSchema>;

// ---------------------------------------------------------------- transitions

export const MediaDownloadPhases = ['grabbed', 'completed', 'imported', 'failed'] as const;
export type MediaDownloadPhase = (typeof MediaDownloadPhases)[number];

/** `media.download.grabbed|completed|imported|failed`: once per download and phase. */
export const MediaDownloadEventSchema = Type.Object({
  downloadId: Type.String(),
  phase: Type.Union(MediaDownloadPhases.map((p) => Type.Literal(p))),
  /** The target that saw it first (a Sonarr/Radarr queue, qBittorrent, or a webhook). */
  source: Type.String(),
  kind: MediaKindSchema,
  via: Type.Union([Type.Literal('poll'), Type.Literal('webhook')]),
  at: Iso,
  title: Type.String(),
  size: Opt(Bytes),
  protocol: Opt(Type.String()),
  downloadClient: Opt(Type.String()),
  indexer: Opt(Type.String()),
  quality: Opt(Type.String()),
  /** On `failed`: why. */
  reason: Opt(Type.String()),
  /** Sonarr/Radarr ids of the series or movie (from the queue). */
  seriesId: Opt(Type.Integer()),
  movieId: Opt(Type.Integer()),
  /** From the Grab/Download webhooks, which name them. */
  series: Opt(Type.Object({ id: Opt(Type.Integer()), title: Type.String() }, Open)),
  movie: Opt(Type.Object({ id: Opt(Type.Integer()), title: Type.String(), year: Opt(Type.Integer()) }, Open)),
  episodes: Opt(Type.Array(Type.Object({ seasonNumber: Opt(Type.Integer()), episodeNumber: Opt(Type.Integer()), title: Opt(Type.String()) }, Open))),
  /** On `imported`: the file's path in the library, and whether it replaced an older file. */
  path: Opt(Type.String()),
  isUpgrade: Opt(Type.Boolean()),
}, Open);
export type MediaDownloadEvent = Static<typeof MediaDownloadEventSchema>;

/** `media.stream.started|stopped`. */
export const MediaStreamEventSchema = Type.Object({
  ...MediaStreamSchema.properties,
  source: Type.String(),
  via: Type.Union([Type.Literal('poll'), Type.Literal('webhook')]),
  at: Iso,
  startedAt: Iso,
  stoppedAt: Opt(Iso),
  durationMs: Opt(Type.Number({ minimum: 0 })),
}, Open);
export type MediaStreamEvent = Static<typeof MediaStreamEventSchema>;

/** `media.storage.low` (threshold crossed) and `media.storage.recovered` (back above threshold + hysteresis). */
export const MediaStorageAlertSchema = Type.Object({
  path: Type.String(),
  state: Type.Union([Type.Literal('low'), Type.Literal('recovered')]),
  at: Iso,
  freeBytes: Bytes,
  totalBytes: Bytes,
  freePercent: Type.Number(),
  thresholdPercent: Type.Number(),
  thresholdBytes: Opt(Bytes),
}, Open);
export type MediaStorageAlert = Static<typeof MediaStorageAlertSchema>;

/** `media.service.error`: a target started failing, or failed differently. Never carries credentials. */
export const MediaServiceErrorSchema = Type.Object({
  source: Type.String(),
  kind: MediaSourceKindSchema,
  reason: MediaErrorReasonSchema,
  message: Type.String(),
  /** HTTP status, when the target answered. */
  status: Opt(Type.Integer()),
  /** The API path that failed (no query string). */
  endpoint: Opt(Type.String()),
  at: Iso,
  /** When this run of failures began. */
  since: Iso,
}, Open);
export type MediaServiceError = Static<typeof MediaServiceErrorSchema>;

/** `media.service.recovered`: a failing target answered again. */
export const MediaServiceRecoveredSchema = Type.Object({
  source: Type.String(),
  kind: MediaSourceKindSchema,
  at: Iso,
  since: Iso,
  downMs: Type.Number({ minimum: 0 }),
  lastReason: MediaErrorReasonSchema,
}, Open);
export type MediaServiceRecovered = Static<typeof MediaServiceRecoveredSchema>;

/** `media.webhook.<kind>`: every accepted webhook, whatever its event type (unknown ones included). */
export const MediaWebhookEventSchema = Type.Object({
  source: Type.String(),
  kind: Type.Union([Type.Literal('sonarr'), Type.Literal('radarr'), Type.Literal('prowlarr'), Type.Literal('jellyfin')]),
  /** `eventType` (Sonarr/Radarr/Prowlarr) or `NotificationType` (Jellyfin); `unknown` when absent. */
  eventType: Type.String(),
  at: Iso,
  instanceName: Opt(Type.String()),
  /** The body as received (JSON object). */
  payload: Type.Object({}, Open),
}, Open);
export type MediaWebhookEvent = Static<typeof MediaWebhookEventSchema>;

// ---------------------------------------------------------------- media.status

export const MediaStatusRequestSchema = Type.Union([Type.Object({}, Open), Type.Null()]);

export const MediaTargetStatusSchema = Type.Object({
  name: Type.String(),
  kind: MediaKindSchema,
  /** Origin only (no credentials, no path). */
  url: Opt(Type.String()),
  intervalMs: Type.Integer(),
  ok: Type.Boolean(),
  lastPollAt: Opt(Iso),
  lastSuccessAt: Opt(Iso),
  error: Opt(Type.Object({ reason: MediaErrorReasonSchema, message: Type.String(), since: Iso }, Open)),
}, Open);
export type MediaTargetStatus = Static<typeof MediaTargetStatusSchema>;

/** The reply of `media.status`: the latest snapshot of everything. */
export const MediaStatusSchema = Type.Object({
  at: Iso,
  targets: Type.Array(MediaTargetStatusSchema),
  queue: Type.Array(MediaQueueSnapshotSchema),
  transfer: Type.Array(MediaTransferSnapshotSchema),
  sessions: Type.Array(MediaSessionsSnapshotSchema),
  library: Type.Array(MediaLibrarySnapshotSchema),
  storage: Nullable(MediaStorageSnapshotSchema),
  webhooks: Type.Object({ enabled: Type.Boolean(), port: Opt(Type.Integer()) }, Open),
}, Open);
export type MediaStatus = Static<typeof MediaStatusSchema>;
