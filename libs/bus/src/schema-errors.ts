import { Kind, OptionalKind, type TSchema } from '@sinclair/typebox';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';

/*
 * TypeBox reports a value that matches no member of a union as one error at the union itself
 * ("Expected union value"), which names neither the field that is wrong nor what was expected.
 * Request bodies are full of unions (a message is one of four roles, a Responses input item one of
 * thirty types, content a string or a list of parts), so the error a client gets is chosen here:
 * the member the value was evidently meant to be (by its `type` or `role`, or by the fields it has)
 * and that member's own first error, down to the innermost field.
 */

type SchemaMap = Record<string, TSchema>;

/** The error under `error` that says best what is wrong; `error` itself when it is not a union's. */
export function mostSpecificError(error: ValueError): ValueError {
  if (error.type !== ValueErrorType.Union) return error;
  const variants = (error.schema.anyOf ?? []) as TSchema[];
  const firsts = error.errors.map((iterator) => iterator.First());
  const value: unknown = error.value;

  if (isRecord(value)) {
    const chosen = chooseObjectVariant(error, variants, firsts, value);
    if (chosen) return chosen;
  }
  // A member that failed below the union's own level accepted the value's kind (the array member
  // of `string | array` for an array, the record of `record | null`): its error is about the contents.
  const deeper = firsts.find((first) => first !== undefined && first.path.startsWith(`${error.path}/`));
  if (deeper) return mostSpecificError(deeper);
  return { ...error, message: `Expected ${expectedKinds(variants)}` };
}

function chooseObjectVariant(error: ValueError, variants: TSchema[], firsts: (ValueError | undefined)[], value: Record<string, unknown>): ValueError | undefined {
  const key = discriminatorKey(variants);
  const given = key === undefined ? undefined : value[key];
  let best: { index: number; known: number; depth: number } | undefined;
  for (const [index, variant] of variants.entries()) {
    const first = firsts[index];
    if (!first || !isObjectSchema(variant)) continue;
    if (key !== undefined) {
      const tag = variant.properties[key]!;
      // The value names another member (`type: "function_call"` is not a message), or omits a
      // tag this member requires.
      if (given !== undefined && !literalsOf(tag).includes(given)) continue;
      if (given === undefined && !isOptional(tag)) continue;
    }
    const known = Object.keys(value).filter((name) => name in variant.properties).length;
    const depth = first.path.length;
    if (!best || known > best.known || (known === best.known && depth > best.depth)) best = { index, known, depth };
  }
  if (best) return mostSpecificError(firsts[best.index]!);
  if (key !== undefined && given !== undefined) {
    const allowed = variants.flatMap((variant) => (isObjectSchema(variant) ? literalsOf(variant.properties[key]!) : []));
    return {
      ...error,
      type: ValueErrorType.Literal,
      path: `${error.path}/${key}`,
      value: given,
      message: `Unknown ${key} ${JSON.stringify(given)}; expected one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`,
      errors: [],
    };
  }
  return undefined;
}

/** A property that every object member tags with literals (`type`, `role`), if there is one. */
function discriminatorKey(variants: TSchema[]): string | undefined {
  const objects = variants.filter(isObjectSchema);
  if (objects.length < 2) return undefined;
  return Object.keys(objects[0]!.properties).find((name) => objects.every((variant) => {
    const property = variant.properties[name];
    return property !== undefined && literalsOf(property).length > 0;
  }));
}

/** The literal values a schema allows: a literal, or a union of literals (and null). */
function literalsOf(schema: TSchema): unknown[] {
  if (schema[Kind] === 'Literal') return [schema.const];
  if (schema[Kind] === 'Union') {
    const members = schema.anyOf as TSchema[];
    if (!members.every((member) => member[Kind] === 'Literal' || member[Kind] === 'Null')) return [];
    return members.map((member) => (member[Kind] === 'Null' ? null : member.const as unknown));
  }
  return [];
}

function expectedKinds(variants: TSchema[]): string {
  const literals = variants.flatMap(literalsOf);
  if (literals.length === variants.length) return `one of ${literals.map((v) => JSON.stringify(v)).join(', ')}`;
  const kinds = [...new Set(variants.map((variant) => (variant[Kind] === 'Literal' ? JSON.stringify(variant.const) : String(variant[Kind]).toLowerCase())))];
  return kinds.join(' or ');
}

function isObjectSchema(schema: TSchema): schema is TSchema & { properties: SchemaMap } {
  return schema[Kind] === 'Object' && typeof schema.properties === 'object';
}

function isOptional(schema: TSchema): boolean {
  return schema[OptionalKind] === 'Optional';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
