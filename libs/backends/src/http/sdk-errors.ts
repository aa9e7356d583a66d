import { GatewayError } from '@homelab/bus';
import type { ProviderName } from '../types.ts';
import { transportError, type BackendTimeouts } from './origin.ts';
import { errorFromStatus } from './status.ts';

/** The error classes of a Stainless-generated SDK (`openai`, `@anthropic-ai/sdk`): both have the same shape. */
export interface SdkErrorClasses {
  APIError: abstract new (...args: never[]) => { status: number | undefined; error: unknown; headers: Headers | undefined };
  APIConnectionError: abstract new (...args: never[]) => Error;
  APIConnectionTimeoutError: abstract new (...args: never[]) => Error;
  APIUserAbortError: abstract new (...args: never[]) => Error;
}

/**
 * What an SDK threw, in the gateway's error table: an HTTP error through the same status mapping as
 * every backend (so an upstream auth failure never carries the upstream text), a connection error
 * as unavailable, an abort as the signal's reason.
 */
export function errorFromSdk(err: unknown, provider: ProviderName, classes: SdkErrorClasses, call: BackendTimeouts & { signal: AbortSignal }): GatewayError {
  if (err instanceof GatewayError) return err;
  if (call.signal.aborted || err instanceof classes.APIUserAbortError) return transportError(err, provider, call, 'connect');
  if (err instanceof classes.APIConnectionTimeoutError) return new GatewayError('timeout', `${provider} did not answer within ${call.headersTimeoutMs} ms`, { cause: err });
  if (err instanceof classes.APIConnectionError) return transportError((err as Error).cause ?? err, provider, call, 'connect');
  if (err instanceof classes.APIError && err.status !== undefined) {
    const headers = err.headers;
    return errorFromStatus(provider, err.status, JSON.stringify(err.error ?? {}), {
      contentType: headers?.get('content-type') ?? '', retryAfter: headers?.get('retry-after') ?? undefined, retryAfterMs: headers?.get('retry-after-ms') ?? undefined,
    });
  }
  return new GatewayError('backend_error', `${provider} request failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/** A web `Response`'s body as the worker reads bodies, with failures while reading mapped once. */
export async function* responseBody(response: Response, provider: ProviderName, call: BackendTimeouts & { signal: AbortSignal }): AsyncGenerator<Uint8Array> {
  if (!response.body) return;
  try {
    for await (const chunk of response.body) yield chunk;
  } catch (err) {
    throw transportError(err, provider, call, 'body');
  }
}
