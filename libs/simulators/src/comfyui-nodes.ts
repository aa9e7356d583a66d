/*
 * The node classes the ComfyUI simulator knows, described as ComfyUI's `GET /object_info` does, and
 * the validation ComfyUI's `POST /prompt` runs on a workflow in API format (execution.validate_prompt):
 * unknown classes, missing required inputs, links to missing nodes or outputs of the wrong type,
 * values of the wrong type, out of range or not in a list. Error objects keep ComfyUI's fields
 * (`type`, `message`, `details`, `extra_info`) and its wording.
 */

export type InputSpec =
  | [string] // a link type: MODEL, CLIP, VAE, CONDITIONING, LATENT, IMAGE, MASK
  | ['INT' | 'FLOAT', { default: number; min: number; max: number; step?: number }]
  | ['STRING', { default?: string; multiline?: boolean }]
  | ['BOOLEAN', { default: boolean }]
  | [string[]]; // a combo: one of these values

export interface NodeClass {
  required: Record<string, InputSpec>;
  optional?: Record<string, InputSpec>;
  output: string[];
  outputNames?: string[];
  outputNode?: boolean;
  category: string;
  displayName?: string;
}

export const SAMPLERS = ['euler', 'euler_ancestral', 'heun', 'dpm_2', 'dpmpp_2m', 'dpmpp_sde', 'dpmpp_2m_sde', 'lcm', 'ddim', 'uni_pc'];
export const SCHEDULERS = ['normal', 'karras', 'exponential', 'sgm_uniform', 'simple', 'ddim_uniform', 'beta'];
const MAX_RESOLUTION = 16384;

/** The classes, given the checkpoints and input files the simulated server has now (combos list them). */
export function nodeClasses(checkpoints: readonly string[], inputFiles: readonly string[]): Record<string, NodeClass> {
  return {
    CheckpointLoaderSimple: { required: { ckpt_name: [[...checkpoints]] }, output: ['MODEL', 'CLIP', 'VAE'], category: 'loaders', displayName: 'Load Checkpoint' },
    CLIPTextEncode: { required: { text: ['STRING', { multiline: true }], clip: ['CLIP'] }, output: ['CONDITIONING'], category: 'conditioning', displayName: 'CLIP Text Encode (Prompt)' },
    EmptyLatentImage: {
      required: {
        width: ['INT', { default: 512, min: 16, max: MAX_RESOLUTION, step: 8 }],
        height: ['INT', { default: 512, min: 16, max: MAX_RESOLUTION, step: 8 }],
        batch_size: ['INT', { default: 1, min: 1, max: 4096 }],
      },
      output: ['LATENT'], category: 'latent', displayName: 'Empty Latent Image',
    },
    KSampler: {
      required: {
        model: ['MODEL'],
        seed: ['INT', { default: 0, min: 0, max: Number.MAX_SAFE_INTEGER }],
        steps: ['INT', { default: 20, min: 1, max: 10000 }],
        cfg: ['FLOAT', { default: 8, min: 0, max: 100, step: 0.1 }],
        sampler_name: [[...SAMPLERS]],
        scheduler: [[...SCHEDULERS]],
        positive: ['CONDITIONING'],
        negative: ['CONDITIONING'],
        latent_image: ['LATENT'],
        denoise: ['FLOAT', { default: 1, min: 0, max: 1, step: 0.01 }],
      },
      output: ['LATENT'], category: 'sampling', displayName: 'KSampler',
    },
    VAEDecode: { required: { samples: ['LATENT'], vae: ['VAE'] }, output: ['IMAGE'], category: 'latent', displayName: 'VAE Decode' },
    VAEEncode: { required: { pixels: ['IMAGE'], vae: ['VAE'] }, output: ['LATENT'], category: 'latent', displayName: 'VAE Encode' },
    LoadImage: { required: { image: [[...inputFiles]] }, output: ['IMAGE', 'MASK'], category: 'image', displayName: 'Load Image' },
    LoadImageMask: { required: { image: [[...inputFiles]], channel: [['alpha', 'red', 'green', 'blue']] }, output: ['MASK'], category: 'mask', displayName: 'Load Image (as Mask)' },
    SetLatentNoiseMask: { required: { samples: ['LATENT'], mask: ['MASK'] }, output: ['LATENT'], category: 'latent/inpaint', displayName: 'Set Latent Noise Mask' },
    ImageScale: {
      required: {
        image: ['IMAGE'], upscale_method: [['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos']],
        width: ['INT', { default: 512, min: 0, max: MAX_RESOLUTION, step: 1 }], height: ['INT', { default: 512, min: 0, max: MAX_RESOLUTION, step: 1 }],
        crop: [['disabled', 'center']],
      },
      output: ['IMAGE'], category: 'image/upscaling', displayName: 'Upscale Image',
    },
    SaveImage: { required: { images: ['IMAGE'], filename_prefix: ['STRING', { default: 'ComfyUI' }] }, output: [], outputNode: true, category: 'image', displayName: 'Save Image' },
    PreviewImage: { required: { images: ['IMAGE'] }, output: [], outputNode: true, category: 'image', displayName: 'Preview Image' },
  };
}

/** One class as `GET /object_info` shows it. */
export function objectInfo(name: string, cls: NodeClass): Record<string, unknown> {
  const input: Record<string, unknown> = { required: cls.required };
  if (cls.optional) input['optional'] = cls.optional;
  return {
    input,
    input_order: { required: Object.keys(cls.required), ...(cls.optional && { optional: Object.keys(cls.optional) }) },
    output: cls.output,
    output_is_list: cls.output.map(() => false),
    output_name: cls.outputNames ?? cls.output,
    name,
    display_name: cls.displayName ?? name,
    description: '',
    python_module: 'nodes',
    category: cls.category,
    output_node: cls.outputNode === true,
  };
}

export interface ComfyError {
  type: string;
  message: string;
  details: string;
  extra_info: Record<string, unknown>;
}

export interface NodeErrors {
  [nodeId: string]: { errors: ComfyError[]; dependent_outputs: string[]; class_type: string };
}

export type ApiWorkflow = Record<string, { class_type: string; inputs: Record<string, unknown>; _meta?: { title?: string } }>;

export type Validation =
  | { ok: true; outputs: string[] }
  | { ok: false; error: ComfyError; nodeErrors: NodeErrors };

/** What `POST /prompt` decides about a workflow, with ComfyUI's error shapes. */
export function validatePrompt(prompt: unknown, classes: Record<string, NodeClass>): Validation {
  if (!prompt || typeof prompt !== 'object' || Array.isArray(prompt)) {
    return { ok: false, error: { type: 'invalid_prompt', message: 'Cannot execute because the prompt is not a dictionary of nodes.', details: '', extra_info: {} }, nodeErrors: {} };
  }
  const workflow = prompt as ApiWorkflow;
  const outputs: string[] = [];
  for (const [id, node] of Object.entries(workflow)) {
    if (!node || typeof node !== 'object' || typeof node.class_type !== 'string') {
      return { ok: false, error: { type: 'invalid_prompt', message: 'Cannot execute because a node is missing the class_type property.', details: `Node ID '#${id}'`, extra_info: {} }, nodeErrors: {} };
    }
    const cls = classes[node.class_type];
    if (!cls) {
      return { ok: false, error: { type: 'invalid_prompt', message: `Cannot execute because node ${node.class_type} does not exist.`, details: `Node ID '#${id}'`, extra_info: {} }, nodeErrors: {} };
    }
    if (cls.outputNode) outputs.push(id);
  }
  if (outputs.length === 0) return { ok: false, error: { type: 'prompt_no_outputs', message: 'Prompt has no outputs', details: '', extra_info: {} }, nodeErrors: {} };

  const nodeErrors: NodeErrors = {};
  const checked = new Map<string, boolean>();
  const good: string[] = [];
  for (const output of outputs) {
    if (validateNode(workflow, output, classes, checked, nodeErrors)) good.push(output);
    else for (const entry of Object.values(nodeErrors)) if (!entry.dependent_outputs.includes(output)) entry.dependent_outputs.push(output);
  }
  if (good.length === 0) {
    const lines = Object.values(nodeErrors).flatMap((e) => e.errors.map((x) => `${x.message}: ${x.details}`));
    return { ok: false, error: { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: lines.join('\n'), extra_info: {} }, nodeErrors };
  }
  return { ok: true, outputs: good };
}

function validateNode(workflow: ApiWorkflow, id: string, classes: Record<string, NodeClass>, checked: Map<string, boolean>, nodeErrors: NodeErrors): boolean {
  const known = checked.get(id);
  if (known !== undefined) return known;
  checked.set(id, true); // a cycle is caught when executing; here it must not recurse forever
  const node = workflow[id]!;
  const cls = classes[node.class_type]!;
  const errors: ComfyError[] = [];
  let valid = true;
  const specs: [string, InputSpec, boolean][] = [
    ...Object.entries(cls.required).map(([k, v]): [string, InputSpec, boolean] => [k, v, true]),
    ...Object.entries(cls.optional ?? {}).map(([k, v]): [string, InputSpec, boolean] => [k, v, false]),
  ];
  for (const [name, spec, required] of specs) {
    const value = node.inputs?.[name];
    if (value === undefined) {
      if (required) errors.push({ type: 'required_input_missing', message: 'Required input is missing', details: name, extra_info: { input_name: name } });
      continue;
    }
    if (Array.isArray(value) && !Array.isArray(spec[0])) {
      if (value.length !== 2) {
        errors.push({ type: 'bad_linked_input', message: 'Bad linked input, must be a length-2 list of [node_id, slot_index]', details: name, extra_info: { input_name: name, input_config: spec, received_value: value } });
        continue;
      }
      const [from, slot] = value as [string, number];
      const source = workflow[String(from)];
      const sourceClass = source ? classes[source.class_type] : undefined;
      const received = sourceClass?.output[Number(slot)];
      if (!source || !sourceClass) {
        errors.push({ type: 'exception_during_inner_validation', message: 'Exception when validating inner node', details: `'${String(from)}'`, extra_info: { input_name: name, input_config: spec, received_value: value } });
        continue;
      }
      if (received !== spec[0]) {
        errors.push({ type: 'return_type_mismatch', message: 'Return type mismatch between linked nodes', details: `${name}, received_type(${received ?? 'None'}) mismatch input_type(${String(spec[0])})`, extra_info: { input_name: name, input_config: spec, received_type: received ?? null, linked_node: value } });
        continue;
      }
      if (!validateNode(workflow, String(from), classes, checked, nodeErrors)) {
        valid = false;
      }
      continue;
    }
    const error = checkValue(name, spec, value);
    if (error) errors.push(error);
  }
  if (errors.length > 0) {
    nodeErrors[id] = { errors, dependent_outputs: [], class_type: node.class_type };
    valid = false;
  }
  checked.set(id, valid);
  return valid;
}

function checkValue(name: string, spec: InputSpec, value: unknown): ComfyError | undefined {
  const extra = { input_name: name, input_config: spec, received_value: value };
  const [type, options] = spec;
  if (Array.isArray(type)) {
    if (!type.includes(value as string)) {
      const list = type.length > 20 ? `${JSON.stringify(type.slice(0, 20)).slice(0, -1)}, ...]` : JSON.stringify(type);
      return { type: 'value_not_in_list', message: 'Value not in list', details: `${name}: '${String(value)}' not in ${list}`, extra_info: extra };
    }
    return undefined;
  }
  if (type === 'INT' || type === 'FLOAT') {
    const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
    if (!Number.isFinite(n) || (type === 'INT' && !Number.isInteger(n))) {
      return { type: 'invalid_input_type', message: `Failed to convert an input value to a ${type} value`, details: `${name}, ${String(value)}, invalid literal`, extra_info: extra };
    }
    const range = options as { min: number; max: number };
    if (n < range.min) return { type: 'value_smaller_than_min', message: `Value ${n} smaller than min of ${range.min}`, details: name, extra_info: extra };
    if (n > range.max) return { type: 'value_bigger_than_max', message: `Value ${n} bigger than max of ${range.max}`, details: name, extra_info: extra };
    return undefined;
  }
  if (type === 'STRING' && typeof value !== 'string') {
    return { type: 'invalid_input_type', message: 'Failed to convert an input value to a STRING value', details: `${name}, ${JSON.stringify(value)}`, extra_info: extra };
  }
  if (type === 'BOOLEAN' && typeof value !== 'boolean') {
    return { type: 'invalid_input_type', message: 'Failed to convert an input value to a BOOLEAN value', details: `${name}, ${JSON.stringify(value)}`, extra_info: extra };
  }
  if (!['STRING', 'BOOLEAN'].includes(type)) {
    // A link type given a literal value.
    return { type: 'invalid_input_type', message: `Input '${name}' must be linked to a ${type} output`, details: name, extra_info: extra };
  }
  return undefined;
}

/** The nodes to run for the given outputs, dependencies first (ComfyUI's order, simplified to a depth-first walk). */
export function executionOrder(workflow: ApiWorkflow, outputs: readonly string[]): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (id: string): void => {
    if (seen.has(id)) return;
    seen.add(id);
    for (const value of Object.values(workflow[id]?.inputs ?? {})) {
      if (Array.isArray(value) && value.length === 2 && workflow[String(value[0])]) visit(String(value[0]));
    }
    order.push(id);
  };
  for (const output of outputs) visit(output);
  return order;
}
