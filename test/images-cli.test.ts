import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pngSize } from '@homelab/simulators';
import { REPO_ROOT } from '@homelab/testing';
import { imagesCommand } from '../cli/src/commands/images.ts';
import { objectStoreConsumers, startImageStack, waitForImageModels } from './helpers/images-stack.ts';

/** `homelab images`, as the owner runs it: the real command (a process), a real stack, the ComfyUI simulator. */

interface CliRun { proc: ReturnType<typeof spawn>; output: { stdout: string; stderr: string }; done: Promise<{ code: number | null; stdout: string; stderr: string }> }

function runCli(args: string[], env: Record<string, string>): CliRun {
  const proc = spawn(process.execPath, [join(REPO_ROOT, 'cli', 'src', 'main.ts'), ...args], { cwd: REPO_ROOT, env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  proc.stdout!.on('data', (b: Buffer) => { output.stdout += b.toString(); });
  proc.stderr!.on('data', (b: Buffer) => { output.stderr += b.toString(); });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => proc.once('exit', (code) => resolve({ code, ...output })));
  return { proc, output, done };
}

class Collect {
  text = '';
  isTTY = false;
  write(chunk: string): boolean { this.text += chunk; return true; }
}

describe('homelab images', () => {
  it('generate writes the PNG with a progress bar from the events; jobs lists it; Ctrl-C cancels a running one', async () => {
    await using lab = await startImageStack({ comfy: { stepIntervalMs: 20 } });
    await waitForImageModels(lab.script);
    const dir = mkdtempSync(join(tmpdir(), 'homelab-cli-images-'));
    // The lab's scripts password, found where `homelab` looks for it (the secrets folder).
    const env = { NATS_URL: lab.stack.nats.url, HOMELAB_SECRETS_DIR: dirname(lab.stack.nats.passwordsFile) };
    try {
      const file = join(dir, 'out.png');
      const result = await runCli(['images', 'generate', 'a', 'lighthouse', '-o', file, '-m', 'sdxl', '--size', '96x64', '--steps', '10', '-n', '2'], env).done;
      expect(result.stderr).toMatch(/^job imgjob_\S+: sdxl on comfyui\n/);
      // Not a terminal: a line at each tenth of the way.
      expect(result.stderr).toContain(' 10% step 1/10 KSampler\n');
      expect(result.stderr).toContain('100% step 10/10 KSampler\n');
      expect(result.stdout).toBe(`${file}\n${join(dir, 'out-2.png')}\n`);
      expect(result.code).toBe(0);
      expect(pngSize(readFileSync(file))).toEqual({ width: 96, height: 64 });
      expect(pngSize(readFileSync(join(dir, 'out-2.png')))).toEqual({ width: 96, height: 64 });
      // Reading the two files left no consumer on the object store's stream.
      expect(await objectStoreConsumers(lab.stack)).toEqual([]);

      const out = new Collect();
      expect(await imagesCommand(lab.script, ['jobs'], out, new Collect())).toBe(0);
      expect(out.text).toMatch(/^JOB\s+STATE\s+MODEL\s+SUBMITTED \(UTC\)\nimgjob_\S+\s+completed\s+comfyui\/sdxl\s+\S+ \S+\s+2 image\(s\)\n$/);

      const slow = runCli(['images', 'generate', 'slow', '-o', join(dir, 'slow.png'), '--steps', '500'], env);
      // Once its progress shows, the job runs at ComfyUI: Ctrl-C must interrupt it there.
      while (!slow.output.stderr.includes('step ')) await new Promise((r) => setTimeout(r, 20));
      slow.proc.kill('SIGINT');
      const stopped = await slow.done;
      expect(stopped.code).toBe(1);
      expect(stopped.stderr).toMatch(/job imgjob_\S+ was cancelled\n$/);
      expect(lab.comfy.prompts.at(-1)!.status).toBe('interrupted');

      const bad = new Collect();
      expect(await imagesCommand(lab.script, ['generate', 'x', '-m', 'nope'], new Collect(), bad)).toBe(1);
      expect(bad.text).toBe("The image model 'nope' does not exist in this lab (GET /v1/models lists them) (model_not_found, 404)\n");
      expect(await imagesCommand(lab.script, ['cancel', 'imgjob_nothere000'], new Collect(), bad)).toBe(1);
      expect(await imagesCommand(lab.script, [], new Collect(), new Collect())).toBe(64);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
