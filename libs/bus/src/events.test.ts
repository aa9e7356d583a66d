import { describe, expect, it } from 'vitest';
import { eventValidator } from './events.ts';

describe('eventValidator', () => {
  it('compiles a schema once per subject pattern, not once per subject with a job id in it', () => {
    const first = eventValidator('images.progress.imgjob_first');
    const second = eventValidator('images.progress.imgjob_second');
    expect(first).toBeDefined();
    // The same compiled validator: a new job id must not cost a schema compilation.
    expect(second).toBe(first);
    const completed = eventValidator('images.completed.imgjob_first');
    expect(completed).toBeDefined();
    expect(completed).not.toBe(first);
    const progress = { jobId: 'imgjob_first', model: 'sdxl', backend: 'comfyui', step: 1, of: 4, percent: 25, at: new Date().toISOString() };
    expect(second!.check(progress)).toBe(true);
    expect(second!.check({ ...progress, step: 'one' })).toBe(false);
    expect(eventValidator('images.nothing.imgjob_first')).toBeUndefined();
  });
});
