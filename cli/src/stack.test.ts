import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './home.ts';
import { SEMI_SPACE_MB, nodeSettings } from './stack.ts';

// How the stack runs Node for its services: a smaller young generation, and the compile cache,
// both overridable by the caller's own environment.
describe('nodeSettings', () => {
  it('caps the semi-space and puts the compile cache under node_modules when the caller sets neither', () => {
    expect(nodeSettings({})).toEqual({
      NODE_OPTIONS: `--max-semi-space-size=${SEMI_SPACE_MB}`,
      NODE_COMPILE_CACHE: join(REPO_ROOT, 'node_modules', '.cache', 'homelab', 'compile-cache'),
    });
  });

  it("keeps the caller's NODE_OPTIONS after its own, so a value there wins, and the caller's cache directory", () => {
    const settings = nodeSettings({ NODE_OPTIONS: '--max-semi-space-size=32 --enable-source-maps', NODE_COMPILE_CACHE: '/var/cache/homelab' });
    expect(settings.NODE_OPTIONS).toBe(`--max-semi-space-size=${SEMI_SPACE_MB} --max-semi-space-size=32 --enable-source-maps`);
    expect(settings.NODE_COMPILE_CACHE).toBe('/var/cache/homelab');
  });
});
