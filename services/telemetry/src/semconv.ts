/*
 * Every metric name, attribute (label) name and bucket boundary the telemetry service uses, in one
 * place. docs/telemetry.md lists them with their meaning; the tests import these constants.
 *
 * Naming: the GenAI metrics keep the OpenTelemetry GenAI semantic conventions' names exactly
 * (`gen_ai.client.token.usage` is `gen_ai_client_token_usage` in Prometheus). The gateway's own,
 * the lab's health and the media node's metrics are named the way PromQL users expect them
 * (`homelab_*`, base units in the name: `_seconds`, `_bytes`, `_usd`), because the Prometheus
 * exporter of this OpenTelemetry version does not append unit suffixes itself. Counters get
 * `_total` from the exporter. Nothing here carries request ids, trace ids, prompts or user text.
 */

// ------------------------------------------------------------------ GenAI semantic conventions

export const GenAiMetric = {
  tokenUsage: 'gen_ai.client.token.usage',
  operationDuration: 'gen_ai.client.operation.duration',
  timeToFirstToken: 'gen_ai.server.time_to_first_token',
  timePerOutputToken: 'gen_ai.server.time_per_output_token',
} as const;

export const GenAiAttr = {
  operationName: 'gen_ai.operation.name',
  providerName: 'gen_ai.provider.name',
  requestModel: 'gen_ai.request.model',
  responseModel: 'gen_ai.response.model',
  tokenType: 'gen_ai.token.type',
  errorType: 'error.type',
} as const;

/** `gen_ai.token.type` values. */
export const TokenType = { input: 'input', output: 'output' } as const;

/** The conventions' fallback value of `error.type` when no better one is known. */
export const ERROR_TYPE_OTHER = '_OTHER';

/** ExplicitBucketBoundaries the GenAI conventions give for each metric. */
export const GenAiBuckets = {
  tokenUsage: [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864],
  operationDuration: [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92],
  timeToFirstToken: [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0],
  timePerOutputToken: [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5],
} as const;

// ------------------------------------------------------------------ the gateway's own

export const GatewayMetric = {
  requests: 'homelab_gateway_requests',
  fallbacks: 'homelab_gateway_fallbacks',
  retries: 'homelab_gateway_retries',
  routeSkips: 'homelab_gateway_route_skips',
  overhead: 'homelab_gateway_overhead_seconds',
  cost: 'homelab_gateway_cost_usd',
  circuitState: 'homelab_gateway_circuit_state',
  circuitTransitions: 'homelab_gateway_circuit_transitions',
  inFlight: 'homelab_gateway_in_flight',
  processFaults: 'homelab_gateway_process_faults',
} as const;

export const GatewayAttr = {
  /** How the model name was resolved: alias, explicit, discovered, configured, prefix, rejected, unknown. */
  route: 'route',
  /** `true` when the request moved to another backend at least once. */
  fallback: 'fallback',
  stream: 'stream',
  /** `ok`, `error`, or `cancelled` (the client hung up or cancelled: not counted as an error). */
  status: 'status',
  /** The API the client spoke (`openai.chat`, `anthropic.messages`, `ollama.chat`, …). */
  dialect: 'dialect',
  /** The backend a fallback or retry left, and the one it went to. */
  from: 'from',
  to: 'to',
  /** Why an attempt failed or a candidate was skipped (a bounded code). */
  reason: 'reason',
  /** Circuit state a transition went to. */
  state: 'state',
} as const;

/** `homelab_gateway_circuit_state` values. */
export const CircuitValue = { closed: 0, 'half-open': 1, open: 2 } as const;

/** The gateway's own time: from tenths of a millisecond to a second. */
export const OverheadBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

// ------------------------------------------------------------------ health

export const HealthMetric = {
  state: 'homelab_health_state',
  stateSince: 'homelab_health_state_since_timestamp_seconds',
  stateChanges: 'homelab_health_state_changes',
  probes: 'homelab_health_probes',
  probeDuration: 'homelab_health_probe_duration_seconds',
  probeLatency: 'homelab_health_probe_latency_seconds',
} as const;

export const HealthAttr = {
  node: 'node',
  service: 'service',
  kind: 'kind',
  state: 'state',
  previous: 'previous',
  outcome: 'outcome',
} as const;

/** `homelab_health_state` values: higher is better; `unknown` (not probed yet) is negative. */
export const HealthValue = { up: 2, degraded: 1, down: 0, unknown: -1 } as const;

export const ProbeBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

// ------------------------------------------------------------------ media

export const MediaMetric = {
  queueItems: 'homelab_media_queue_items',
  queueRecords: 'homelab_media_queue_records',
  downloadsActive: 'homelab_media_downloads_active',
  downloads: 'homelab_media_downloads',
  torrents: 'homelab_media_torrents',
  transferSpeed: 'homelab_media_transfer_speed_bytes_per_second',
  sessions: 'homelab_media_sessions',
  streamsActive: 'homelab_media_streams_active',
  streams: 'homelab_media_streams',
  streamDuration: 'homelab_media_stream_duration_seconds',
  libraryItems: 'homelab_media_library_items',
  librarySize: 'homelab_media_library_size_bytes',
  libraryMissing: 'homelab_media_library_missing',
  libraryCutoffUnmet: 'homelab_media_library_cutoff_unmet',
  healthIssues: 'homelab_media_system_health_issues',
  indexers: 'homelab_media_indexers',
  rootFolderFree: 'homelab_media_rootfolder_freespace_bytes',
  storageSize: 'homelab_media_storage_size_bytes',
  storageUsed: 'homelab_media_storage_used_bytes',
  storageFree: 'homelab_media_storage_free_bytes',
  storageUsedRatio: 'homelab_media_storage_used_ratio',
  storageLow: 'homelab_media_storage_low',
  storageAlerts: 'homelab_media_storage_alerts',
  serviceUp: 'homelab_media_service_up',
  serviceErrors: 'homelab_media_service_errors',
  webhooks: 'homelab_media_webhooks',
} as const;

export const MediaAttr = {
  /** The target's name in the lab's config (`sonarr`, `radarr-4k`). */
  source: 'source',
  /** sonarr, radarr, prowlarr, qbittorrent, jellyfin, immich, storage. */
  kind: 'kind',
  status: 'status',
  /** Sonarr/Radarr's trackedDownloadStatus (ok, warning, error) and trackedDownloadState (downloading, importPending, …), as exportarr labels them. */
  downloadStatus: 'download_status',
  downloadState: 'download_state',
  phase: 'phase',
  state: 'state',
  direction: 'direction',
  playMethod: 'play_method',
  type: 'type',
  path: 'path',
  reason: 'reason',
  eventType: 'event_type',
} as const;

/** Watched time of one playback: a minute to six hours. */
export const StreamDurationBuckets = [60, 300, 600, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 21600];

// ------------------------------------------------------------------ images (docs/images.md)

export const ImageMetric = {
  /** Jobs accepted (`images.submitted`). */
  submitted: 'homelab_image_jobs_submitted',
  /** Jobs ended, by outcome (completed, failed, cancelled). */
  jobs: 'homelab_image_jobs',
  /** Jobs waiting in the work queue now, and running at a backend now. */
  queued: 'homelab_image_jobs_queued',
  running: 'homelab_image_jobs_running',
  /** Time from accepted to started, and from started to done. */
  queueWait: 'homelab_image_queue_wait_seconds',
  duration: 'homelab_image_job_duration_seconds',
  /** Sampler steps per second of each completed job. */
  stepsPerSecond: 'homelab_image_steps_per_second',
  /** Images made. */
  images: 'homelab_image_images',
  failures: 'homelab_image_failures',
  /** A job given to a worker again (a worker died, or handed it back). */
  takeovers: 'homelab_image_takeovers',
  cost: 'homelab_image_cost_usd',
} as const;

export const ImageAttr = {
  /** comfyui or openai. */
  backend: 'backend',
  /** The backend's model (a workflow's name, OpenAI's model id): config names, bounded. */
  model: 'model',
  /** completed, failed, cancelled. */
  outcome: 'outcome',
  /** Why a job failed: validation, node_error, out_of_memory, lost, comfyui_unavailable, timeout, attempts, upstream, … */
  reason: 'reason',
  /** queued or running: where a cancelled job was. */
  phase: 'phase',
} as const;

/** Queue waits and job durations: a tenth of a second to an hour. */
export const ImageDurationBuckets = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600];
export const StepsPerSecondBuckets = [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128];

// ------------------------------------------------------------------ the telemetry service itself

export const TelemetryMetric = {
  events: 'homelab_telemetry_events',
} as const;

export const TelemetryAttr = {
  stream: 'stream',
  /** The event's key in the subject map (`inferenceCompleted`, `healthProbe`, …). */
  event: 'event',
  /** applied, invalid (failed validation, dropped), ignored (no metric for it), failed (redelivered). */
  result: 'result',
  /** A service of the gateway (`router`, `worker-vllm`, …). */
  service: 'service',
} as const;

/** Label value used when a bounded label has seen too many distinct values. */
export const OTHER = '_other';
