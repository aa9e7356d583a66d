import type { MediaErrorReason } from '@homelab/bus';

export interface MediaErrorOptions {
  /** HTTP status, when the target answered. */
  status?: number;
  /** The API path that failed, never with its query string (which may carry `apikey=`). */
  endpoint?: string;
  cause?: unknown;
}

/**
 * A target's failure, with a stable reason (the `reason` of `media.service.error`). Its message is
 * written by this service from facts it chose (status, path, byte counts): never a URL with a
 * query, a header, a response body or a credential.
 */
export class MediaError extends Error {
  readonly reason: MediaErrorReason;
  readonly status: number | undefined;
  readonly endpoint: string | undefined;

  constructor(reason: MediaErrorReason, message: string, options: MediaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MediaError';
    this.reason = reason;
    this.status = options.status;
    this.endpoint = options.endpoint;
  }
}

/** The poller was stopped (shutdown): not a failure of the target. */
export class PollAborted extends Error {
  constructor() {
    super('poll aborted');
    this.name = 'PollAborted';
  }
}

/** Anything thrown by a poll, as a MediaError whose message is safe to publish. */
export function toMediaError(err: unknown): MediaError {
  if (err instanceof MediaError) return err;
  // Unexpected errors: the class name only; their messages could quote anything.
  return new MediaError('invalid_response', `unexpected ${(err as Error)?.name ?? 'error'} while reading the answer`, { cause: err });
}
