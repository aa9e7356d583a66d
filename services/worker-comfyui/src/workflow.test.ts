import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, type ImageModel } from '@homelab/config';
import { WorkflowError, checkWorkflow, fillWorkflow, loadWorkflow, missingClasses, stepsOf } from './workflow.ts';

const lab = loadConfig({ env: {} });
const dir = mkdtempSync(join(tmpdir(), 'homelab-workflow-'));

function modelWith(workflow: unknown, mapping: ImageModel['mapping']): ImageModel {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, typeof workflow === 'string' ? workflow : JSON.stringify(workflow));
  return { name: 'm', workflow: file, workflowFile: file, mapping, kind: 'text-to-image', defaults: {}, maxSide: 2048, maxSteps: 150 };
}

describe('workflows', () => {
  it.each(Object.keys(lab.images.models))('the shipped model %s loads with the seed lab\'s mapping', (name) => {
    const loaded = loadWorkflow(lab.images.models[name]!);
    expect(Object.keys(loaded.workflow).length).toBeGreaterThan(5);
  });

  it('names the file, the mapping key and the node when the mapping points at a node that is not there', () => {
    const model = modelWith({ '6': { class_type: 'CLIPTextEncode', inputs: { text: '' } } }, { prompt: '6.text', seed: '3.seed' });
    expect(() => loadWorkflow(model)).toThrowError(WorkflowError);
    expect(() => loadWorkflow(model)).toThrowError(`${model.workflowFile}: image model 'm': mapping.seed names node '3', which is not in the workflow (nodes: 6)`);
    try { loadWorkflow(model); } catch (err) { expect((err as WorkflowError).node).toBe('3'); }
  });

  it('refuses an input the node does not have, a linked input, a dangling link, the UI format and bad JSON', () => {
    const base = { '3': { class_type: 'KSampler', inputs: { seed: 1, model: ['4', 0] } }, '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'x' } }, '6': { class_type: 'CLIPTextEncode', inputs: { text: '' } } };
    expect(() => loadWorkflow(modelWith(base, { prompt: '6.text', steps: '3.steps' }))).toThrowError(/mapping\.steps names input 'steps' of node '3' \(KSampler\), which has no such input \(inputs: seed, model\)/);
    expect(() => loadWorkflow(modelWith(base, { prompt: '6.text', seed: '3.model' }))).toThrowError(/mapping\.seed names input 'model' of node '3' \(KSampler\), which is a link/);
    expect(() => loadWorkflow(modelWith({ ...base, '8': { class_type: 'VAEDecode', inputs: { samples: ['99', 0] } } }, { prompt: '6.text' }))).toThrowError(/node '8' \(VAEDecode\) input 'samples' links to node '99', which is not in the workflow/);
    expect(() => loadWorkflow(modelWith({ nodes: [], links: [] }, { prompt: '6.text' }))).toThrowError(/UI format; export the workflow with "Export \(API\)"/);
    expect(() => loadWorkflow(modelWith('{ nope', { prompt: '6.text' }))).toThrowError(/not JSON/);
    expect(() => loadWorkflow({ ...modelWith(base, { prompt: '6.text' }), workflowFile: join(dir, 'missing.json') })).toThrowError(/missing\.json: image model 'm': cannot read the workflow \(ENOENT\)/);
    expect(() => checkWorkflow({ '1': { inputs: {} } }, { name: 'm', mapping: { prompt: '1.text' } }, 'f.json')).toThrowError("f.json: image model 'm': node '1' has no class_type (not a workflow in API format)");
  });

  it('fills a copy of the workflow where the mapping says, with the model\'s defaults, leaving the template alone', () => {
    const model = { ...lab.images.models['sdxl']!, defaults: { width: 1024, height: 768, steps: 25, negativePrompt: 'blurry' } };
    const loaded = loadWorkflow(model);
    const before = JSON.stringify(loaded.workflow);
    const filled = fillWorkflow(loaded, { prompt: 'a fox', seed: 42, batchSize: 2, height: 512 });
    expect(filled['6']!.inputs['text']).toBe('a fox');
    expect(filled['7']!.inputs['text']).toBe('blurry');
    expect(filled['3']!.inputs).toMatchObject({ seed: 42, steps: 25, model: ['4', 0] });
    expect(filled['5']!.inputs).toMatchObject({ width: 1024, height: 512, batch_size: 2 });
    expect(stepsOf(filled, model.mapping)).toBe(25);
    expect(JSON.stringify(loaded.workflow)).toBe(before);
    expect(missingClasses(filled, { KSampler: {}, CheckpointLoaderSimple: {}, EmptyLatentImage: {}, CLIPTextEncode: {}, VAEDecode: {} })).toEqual([{ node: '9', classType: 'SaveImage' }]);
  });
});
