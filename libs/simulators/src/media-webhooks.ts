/*
 * Webhook bodies as Sonarr v4, Radarr v5, Prowlarr v1 (Settings > Connect > Webhook) and Jellyfin's
 * webhook plugin ("Send All Properties") send them, built from their payload classes
 * (Sonarr's WebhookBase.cs / WebhookGrabPayload.cs / WebhookImportPayload.cs, the plugin's
 * DataObjectHelpers.cs). Values are invented; shapes and key spelling are theirs.
 */

const INSTANCE = { sonarr: 'Sonarr', radarr: 'Radarr', prowlarr: 'Prowlarr' } as const;
const APP_URL = { sonarr: 'http://192.168.1.9:8989', radarr: 'http://192.168.1.9:7878', prowlarr: 'http://192.168.1.9:9696' } as const;

export interface ArrWebhookDownload {
  downloadId: string;
  /** Release title. */
  title?: string;
  seriesTitle?: string;
  movieTitle?: string;
  size?: number;
}

const series = (title = 'The Expanse') => ({
  id: 1, title, titleSlug: title.toLowerCase().replace(/\s+/g, '-'), path: `/tv/${title}`, tvdbId: 280619, tvMazeId: 1825, tmdbId: 63639, imdbId: 'tt3230854', type: 'standard', year: 2015, genres: ['Drama', 'Science Fiction'], images: [], tags: [],
});
const episodes = () => [{ id: 101, episodeNumber: 1, seasonNumber: 1, title: 'Dulcinea', overview: 'Pilot.', airDate: '2015-12-14', airDateUtc: '2015-12-15T02:00:00Z', seriesId: 1, tvdbId: 5361412 }];
const movie = (title = 'Blade Runner 2049') => ({
  id: 7, title, year: 2017, releaseDate: '2017-12-19', folderPath: `/movies/${title} (2017)`, tmdbId: 335984, imdbId: 'tt1856101', overview: '', genres: ['Science Fiction'], images: [], tags: [], originalLanguage: { id: 1, name: 'English' },
});
const release = (d: ArrWebhookDownload, app: 'sonarr' | 'radarr') => ({
  quality: 'Bluray-1080p', qualityVersion: 1, releaseGroup: 'GRP', releaseTitle: d.title ?? (app === 'sonarr' ? 'The.Expanse.S01E01.1080p.BluRay.x264-GRP' : 'Blade.Runner.2049.2017.1080p.BluRay.x264-GRP'),
  indexer: 'Nyaa.si (Prowlarr)', size: d.size ?? 1_500_000_000, customFormatScore: 0, customFormats: [],
});

export function arrGrabPayload(app: 'sonarr' | 'radarr', d: ArrWebhookDownload): Record<string, unknown> {
  return {
    ...(app === 'sonarr' ? { series: series(d.seriesTitle), episodes: episodes() } : { movie: movie(d.movieTitle), remoteMovie: { tmdbId: 335984, imdbId: 'tt1856101', title: d.movieTitle ?? 'Blade Runner 2049', year: 2017 } }),
    release: release(d, app),
    downloadClient: 'qBittorrent', downloadClientType: 'qBittorrent', downloadId: d.downloadId,
    customFormatInfo: { customFormats: [], customFormatScore: 0 },
    eventType: 'Grab', instanceName: INSTANCE[app], applicationUrl: APP_URL[app],
  };
}

/** `Download`: the file was imported into the library. */
export function arrDownloadPayload(app: 'sonarr' | 'radarr', d: ArrWebhookDownload & { isUpgrade?: boolean }): Record<string, unknown> {
  const relativePath = app === 'sonarr' ? 'Season 01/The Expanse - S01E01 - Dulcinea Bluray-1080p.mkv' : 'Blade Runner 2049 (2017) Bluray-1080p.mkv';
  const file = {
    id: 555, relativePath, path: app === 'sonarr' ? `/tv/The Expanse/${relativePath}` : `/movies/Blade Runner 2049 (2017)/${relativePath}`,
    quality: 'Bluray-1080p', qualityVersion: 1, releaseGroup: 'GRP', sceneName: d.title ?? 'Some.Release-GRP', size: d.size ?? 1_500_000_000, dateAdded: '2026-11-27T10:00:00Z',
    mediaInfo: { audioChannels: 5.1, audioCodec: 'DTS', audioLanguages: ['eng'], height: 1080, width: 1920, subtitles: ['eng'], videoCodec: 'x264', videoDynamicRange: '', videoDynamicRangeType: '' },
  };
  return {
    ...(app === 'sonarr' ? { series: series(d.seriesTitle), episodes: episodes(), episodeFile: file } : { movie: movie(d.movieTitle), remoteMovie: { tmdbId: 335984, imdbId: 'tt1856101', title: d.movieTitle ?? 'Blade Runner 2049', year: 2017 }, movieFile: file }),
    release: { releaseTitle: d.title ?? 'Some.Release-GRP', indexer: 'Nyaa.si (Prowlarr)', size: d.size ?? 1_500_000_000 },
    isUpgrade: d.isUpgrade ?? false, downloadClient: 'qBittorrent', downloadClientType: 'qBittorrent', downloadId: d.downloadId,
    customFormatInfo: { customFormats: [], customFormatScore: 0 },
    eventType: 'Download', instanceName: INSTANCE[app], applicationUrl: APP_URL[app],
  };
}

export function arrManualInteractionPayload(app: 'sonarr' | 'radarr', d: ArrWebhookDownload): Record<string, unknown> {
  return {
    ...(app === 'sonarr' ? { series: series(d.seriesTitle), episodes: episodes() } : { movie: movie(d.movieTitle) }),
    downloadInfo: { quality: 'Bluray-1080p', qualityVersion: 1, title: d.title ?? 'Some.Release-GRP', size: d.size ?? 1_500_000_000 },
    downloadClient: 'qBittorrent', downloadClientType: 'qBittorrent', downloadId: d.downloadId, downloadStatus: 'Warning',
    downloadStatusMessages: [{ title: d.title ?? 'Some.Release-GRP', messages: ['Found matching series via grab history, but release was matched to series by ID. Automatic import is not possible.'] }],
    customFormatInfo: { customFormats: [], customFormatScore: 0 }, release: { releaseTitle: d.title ?? 'Some.Release-GRP', indexer: 'Nyaa.si (Prowlarr)', size: d.size ?? 1_500_000_000 },
    eventType: 'ManualInteractionRequired', instanceName: INSTANCE[app], applicationUrl: APP_URL[app],
  };
}

export function arrHealthPayload(app: 'sonarr' | 'radarr' | 'prowlarr', restored = false): Record<string, unknown> {
  return {
    level: 'warning', message: 'Indexers unavailable due to failures for more than 6 hours: Nyaa.si', type: 'IndexerLongTermStatusCheck',
    wikiUrl: `https://wiki.servarr.com/${app}/system#indexers-are-unavailable-due-to-failures`,
    eventType: restored ? 'HealthRestored' : 'Health', instanceName: INSTANCE[app],
  };
}

export function arrApplicationUpdatePayload(app: 'sonarr' | 'radarr' | 'prowlarr'): Record<string, unknown> {
  return { message: `${INSTANCE[app]} updated from 4.0.14.2939 to 4.0.15.2941`, previousVersion: '4.0.14.2939', newVersion: '4.0.15.2941', eventType: 'ApplicationUpdate', instanceName: INSTANCE[app] };
}

export function arrTestPayload(app: 'sonarr' | 'radarr' | 'prowlarr'): Record<string, unknown> {
  if (app === 'prowlarr') return { eventType: 'Test', instanceName: INSTANCE[app], applicationUrl: APP_URL[app] };
  return app === 'sonarr'
    ? { series: { id: 1, title: 'Test Title', path: 'C:\\testpath', tvdbId: 1234, tags: ['test-tag'] }, episodes: [{ id: 123, episodeNumber: 1, seasonNumber: 1, title: 'Test title' }], eventType: 'Test', instanceName: INSTANCE[app], applicationUrl: APP_URL[app] }
    : { movie: { id: 1, title: 'Test Title', year: 1970, releaseDate: '1970-01-01', folderPath: 'C:\\testpath', tmdbId: 0, tags: ['test-tag'] }, remoteMovie: { tmdbId: 1234, imdbId: '5678', title: 'Test title', year: 1970 }, release: { quality: 'Test Quality', qualityVersion: 1, releaseGroup: 'Test Group', releaseTitle: 'Test Title', indexer: 'Test Indexer', size: 9999999 }, eventType: 'Test', instanceName: INSTANCE[app], applicationUrl: APP_URL[app] };
}

export function arrRenamePayload(): Record<string, unknown> {
  return {
    series: series(), renamedEpisodeFiles: [{ previousRelativePath: 'Season 01/old.mkv', previousPath: '/tv/The Expanse/Season 01/old.mkv', id: 555, relativePath: 'Season 01/new.mkv', path: '/tv/The Expanse/Season 01/new.mkv', quality: 'Bluray-1080p', qualityVersion: 1, size: 1 }],
    eventType: 'Rename', instanceName: 'Sonarr', applicationUrl: APP_URL.sonarr,
  };
}

/** Prowlarr's `Grab` (a release sent to a download client from Prowlarr's own search). */
export function prowlarrGrabPayload(): Record<string, unknown> {
  return {
    release: { releaseTitle: 'Some.Linux.ISO.2026', indexer: 'Nyaa.si', size: 4_000_000_000, categories: ['Other'], genres: [], indexerFlags: [], publishDate: '2026-11-27T09:00:00Z' },
    trigger: 'manual', source: 'Prowlarr', host: 'prowlarr', eventType: 'Grab', instanceName: 'Prowlarr', applicationUrl: APP_URL.prowlarr,
  };
}

export interface JellyfinWebhookPlay {
  deviceId: string;
  /** 32 hex digits; sent in the `D` format (with dashes) as the plugin serialises Guids. */
  itemId: string;
  name?: string;
  itemType?: string;
  seriesName?: string;
  userName?: string;
  deviceName?: string;
  clientName?: string;
  playMethod?: string;
  positionTicks?: number;
}

const dashed = (hex: string) => hex.length === 32 ? `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}` : hex;

function jellyfinBase(type: string): Record<string, unknown> {
  return { ServerId: '6f1c2a7b9d0e4f3a8b5c1d2e3f4a5b6c', ServerName: 'media-node', ServerVersion: '10.11.2', ServerUrl: 'http://192.168.1.9:8096', NotificationType: type };
}

function jellyfinItem(p: JellyfinWebhookPlay): Record<string, unknown> {
  const now = new Date();
  return {
    Timestamp: now.toISOString().replace('Z', ''), UtcTimestamp: now.toISOString(), Name: p.name ?? 'Blade Runner 2049', Overview: '', Tagline: '', ItemId: dashed(p.itemId),
    ItemType: p.itemType ?? 'Movie', RunTimeTicks: 98_340_000_000, RunTime: '02:43:54', Year: 2017,
    ...(p.seriesName && { SeriesName: p.seriesName, SeasonNumber: 1, SeasonNumber00: '01', EpisodeNumber: 1, EpisodeNumber00: '01' }),
  };
}

function jellyfinPlayback(type: 'PlaybackStart' | 'PlaybackStop' | 'PlaybackProgress', p: JellyfinWebhookPlay): Record<string, unknown> {
  return {
    ...jellyfinBase(type), ...jellyfinItem(p),
    PlaybackPositionTicks: p.positionTicks ?? (type === 'PlaybackStart' ? 0 : 36_000_000_000), PlaybackPosition: type === 'PlaybackStart' ? '00:00:00' : '01:00:00',
    MediaSourceId: p.itemId, IsPaused: false, IsAutomated: false, DeviceId: p.deviceId, DeviceName: p.deviceName ?? 'Living Room TV', ClientName: p.clientName ?? 'Jellyfin Android TV',
    PlayMethod: p.playMethod ?? 'DirectPlay', NotificationUsername: p.userName ?? 'alice', UserId: '0b8e6a4c-3f2d-4d8e-9c1a-7e5f2b3c4d5e',
    ...(type === 'PlaybackStop' && { PlayedToCompletion: false }),
  };
}

export const jellyfinPlaybackStartPayload = (p: JellyfinWebhookPlay) => jellyfinPlayback('PlaybackStart', p);
export const jellyfinPlaybackStopPayload = (p: JellyfinWebhookPlay) => jellyfinPlayback('PlaybackStop', p);
export const jellyfinPlaybackProgressPayload = (p: JellyfinWebhookPlay) => jellyfinPlayback('PlaybackProgress', p);

export function jellyfinItemAddedPayload(name = 'Dune: Part Two'): Record<string, unknown> {
  return { ...jellyfinBase('ItemAdded'), ...jellyfinItem({ deviceId: '', itemId: 'a1b2c3d4e5f60718293a4b5c6d7e8f90', name }) };
}

export function jellyfinAuthenticationFailurePayload(): Record<string, unknown> {
  return { ...jellyfinBase('AuthenticationFailure'), Username: 'mallory', App: 'Jellyfin Web', DeviceId: 'd3adb33f', DeviceName: 'Firefox', RemoteEndPoint: '192.168.1.66' };
}
