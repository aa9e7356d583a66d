import { GatewayError } from '@homelab/bus';
import { expect } from 'vitest';

/* Helpers for the dialects' tests (not part of the library's entry points). */

/** The GatewayError `fn` throws; anything else thrown, or nothing, fails the test. */
export function thrownGatewayError(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('expected a GatewayError');
}

/** `fn` throws a GatewayError with this code and a message matching `text`. */
export function expectGatewayError(fn: () => unknown, code: string, text: RegExp): void {
  const error = thrownGatewayError(fn);
  expect(error.code).toBe(code);
  expect(error.message).toMatch(text);
}
