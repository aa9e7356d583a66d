import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths pino replaces with "[redacted]" wherever they appear in a log object.
 * Secrets reach log calls mostly through headers and config objects; these cover both.
 */
export const REDACT_PATHS = [
  'authorization', '*.authorization', '*.*.authorization', 'headers.authorization', 'req.headers.authorization',
  'req.headers["x-api-key"]', 'headers["x-api-key"]', '*["x-api-key"]', 'req.headers.cookie', 'headers.cookie',
  'apiKey', '*.apiKey', '*.*.apiKey', '*.*.*.apiKey', 'api_key', '*.api_key', 'password', '*.password', '*.*.password', '*.*.*.password',
  'token', '*.token', '*.*.token', 'secret', '*.secret', '*.*.secret', 'pass', '*.pass', 'creds', '*.creds',
];

export interface CreateLoggerOptions {
  service: string;
  level?: string;
  /** For tests: where lines go instead of stdout. */
  destination?: DestinationStream;
}

/** The one root logger of a process: JSON lines on stdout, bound to the service name, secrets redacted. */
export function createLogger({ service, level, destination }: CreateLoggerOptions): Logger {
  const options: LoggerOptions = {
    level: level ?? process.env['LOG_LEVEL'] ?? 'info',
    base: { service },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}
