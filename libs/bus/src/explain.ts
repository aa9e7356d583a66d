import { Kind, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/*
 * Why a value does not match a schema, said the way a person fixing the request needs it: the
 * field's path (`messages[0].role`), what was expected, and what came. TypeBox's own first error
 * for a union is "Expected union value" at the union's path; here a union of objects is resolved
 * by its discriminator (the member whose `role` / `type` literal matches), so the error named is
 * the real one inside the member the client meant.
 */

export interface Explanation {
  /** OpenAI-style parameter path (`messages[0].content`); empty for the body itself. */
  path: string;
  /** `messages[0].role: expected one of 'system', 'user', got 'wizard'` */
  message: string;
}

type Schema = TSchema & Record<string, unknown>;

const kindOf = (s: Schema): string => String(s[Kind]);

/** The first reason `value` does not match `schema`, or undefined when it matches. */
export function explainMismatch(schema: TSchema, value: unknown): Explanation | undefined {
  if (Value.Check(schema, value)) return undefined;
  return explain(schema as Schema, value, '');
}

function at(path: string, message: string): Explanation {
  return { path, message: `${path || 'body'}: ${message}` };
}

function join(path: string, key: string | number): string {
  return typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;
}

/** How a value is named after "got": `string "hot"`, `number 7`, `an object`, `nothing`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  switch (typeof value) {
    case 'string': return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
    case 'number': return `number ${value}`;
    case 'boolean': return `boolean ${value}`;
    case 'object': return 'an object';
    default: return typeof value;
  }
}

/** A literal as it is listed among the expected values: `'user'`, `7`, `true`. */
function literal(value: unknown): string {
  return typeof value === 'string' ? `'${value.length > 40 ? `${value.slice(0, 40)}…` : value}'` : String(value);
}

const TYPE_NAMES: Record<string, string> = {
  String: 'a string', Number: 'a number', Integer: 'an integer', Boolean: 'a boolean', Null: 'null', Object: 'an object',
  Array: 'an array', Record: 'an object', Literal: 'a literal', Union: 'one of several shapes',
};

function typeName(s: Schema): string {
  if (kindOf(s) === 'Literal') return literal(s['const']);
  return TYPE_NAMES[kindOf(s)] ?? kindOf(s).toLowerCase();
}

/** Whether a value is of the JSON type a schema takes, whatever its constraints. */
function sameType(s: Schema, value: unknown): boolean {
  switch (kindOf(s)) {
    case 'String': return typeof value === 'string';
    case 'Number': return typeof value === 'number';
    case 'Integer': return typeof value === 'number';
    case 'Boolean': return typeof value === 'boolean';
    case 'Null': return value === null;
    case 'Array': return Array.isArray(value);
    case 'Object':
    case 'Record': return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'Literal': return typeof value === typeof s['const'];
    case 'Union': return (s['anyOf'] as Schema[]).some((m) => sameType(m, value));
    default: return true;
  }
}

function explain(s: Schema, value: unknown, path: string): Explanation {
  switch (kindOf(s)) {
    case 'Union': return explainUnion(s, value, path);
    case 'Literal': return at(path, `expected ${literal(s['const'])}, got ${typeof value === typeof s['const'] ? literal(value) : describeValue(value)}`);
    case 'Object': return explainObject(s, value, path);
    case 'Record': return explainRecord(s, value, path);
    case 'Array': return explainArray(s, value, path);
    case 'String': return explainString(s, value, path);
    case 'Number':
    case 'Integer': return explainNumber(s, value, path);
    case 'Boolean':
    case 'Null': return at(path, `expected ${typeName(s)}, got ${describeValue(value)}`);
    default: return fallback(s, value, path);
  }
}

/** TypeBox's own first error, for kinds this file does not take apart. */
function fallback(s: Schema, value: unknown, path: string): Explanation {
  const first = Value.Errors(s, value).First();
  if (!first) return at(path, `does not match, got ${describeValue(value)}`);
  const inner = first.path.split('/').slice(1).reduce<string>((acc, part) => join(acc, /^\d+$/.test(part) ? Number(part) : part), path);
  return at(inner, `${first.message.replace(/^Expected /, 'expected ')}, got ${describeValue(first.value)}`);
}

function explainUnion(s: Schema, value: unknown, path: string): Explanation {
  const members = s['anyOf'] as Schema[];
  // Only literals: an enum.
  if (members.every((m) => kindOf(m) === 'Literal')) {
    const shown = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? literal(value) : describeValue(value);
    return at(path, `expected one of ${members.map((m) => literal(m['const'])).join(', ')}, got ${shown}`);
  }
  // Nullable: a value that is not null was meant for the other member.
  const notNull = members.filter((m) => kindOf(m) !== 'Null');
  if (notNull.length === 1 && value !== null) return explain(notNull[0]!, value, path);
  // Some literals and something else (`'auto'` or a function object): a primitive was meant as one of the literals.
  const literals = members.filter((m) => kindOf(m) === 'Literal' && typeof m['const'] === typeof value);
  if (literals.length > 0 && (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')) {
    const others = [...new Set(members.filter((m) => kindOf(m) !== 'Literal').map(typeName))];
    return at(path, `expected one of ${literals.map((m) => literal(m['const'])).join(', ')}${others.length ? ` (or ${others.join(' or ')})` : ''}, got ${literal(value)}`);
  }
  // Objects told apart by a literal field (`role`, `type`): the member the value names is the one meant.
  const objects = members.filter((m) => kindOf(m) === 'Object');
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  if (isObject && objects.length > 1) {
    const key = discriminator(objects);
    if (key) {
      const given = (value as Record<string, unknown>)[key];
      // A member whose discriminator is optional (a Responses message item without `type`) is the
      // one meant when the value leaves it out.
      const chosen = given === undefined
        ? objects.find((m) => !((m['required'] as string[] | undefined) ?? []).includes(key))
        : objects.find((m) => Value.Check(propertyOf(m, key)!, given));
      if (chosen) return explain(chosen, value, path);
      const allowed = objects.flatMap((m) => literalsOf(propertyOf(m, key)!));
      const shown = given === undefined ? 'nothing' : typeof given === 'string' ? literal(given) : describeValue(given);
      return at(join(path, key), `expected one of ${allowed.map(literal).join(', ')}, got ${shown}`);
    }
  }
  // One member of the value's JSON type (a string or an array of parts; a number or null): that one.
  const sameKind = members.filter((m) => sameType(m, value));
  if (sameKind.length === 1) return explain(sameKind[0]!, value, path);
  const names = [...new Set(members.map(typeName))];
  if (sameKind.length === 0) return at(path, `expected ${names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names.at(-1)}` : names[0]}, got ${describeValue(value)}`);
  // Several of the same type: the one whose error goes deepest is the likeliest meant.
  const candidates = sameKind.map((m) => explain(m, value, path)).sort((a, b) => b.path.length - a.path.length);
  return candidates[0]!;
}

function propertyOf(s: Schema, key: string): Schema | undefined {
  return (s['properties'] as Record<string, Schema> | undefined)?.[key];
}

function literalsOf(s: Schema): unknown[] {
  if (kindOf(s) === 'Literal') return [s['const']];
  if (kindOf(s) === 'Union') return (s['anyOf'] as Schema[]).flatMap(literalsOf);
  return [];
}

/** A required property that is a literal (or a union of literals) in every member, with no value shared. */
function discriminator(objects: Schema[]): string | undefined {
  const first = objects[0]!;
  for (const key of Object.keys((first['properties'] as Record<string, Schema>) ?? {})) {
    const sets = objects.map((m) => { const p = propertyOf(m, key); return p ? literalsOf(p) : []; });
    if (sets.some((set) => set.length === 0)) continue;
    const all = sets.flat();
    if (new Set(all).size === all.length) return key;
  }
  return undefined;
}

function explainObject(s: Schema, value: unknown, path: string): Explanation {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return at(path, `expected an object, got ${describeValue(value)}`);
  const record = value as Record<string, unknown>;
  const properties = (s['properties'] as Record<string, Schema> | undefined) ?? {};
  const required = new Set((s['required'] as string[] | undefined) ?? []);
  for (const [key, prop] of Object.entries(properties)) {
    if (!(key in record) || record[key] === undefined) {
      if (required.has(key)) return at(join(path, key), `required, expected ${describeExpected(prop)}, got nothing`);
      continue;
    }
    if (!Value.Check(prop, record[key])) return explain(prop, record[key], join(path, key));
  }
  if (s['additionalProperties'] === false) {
    const extra = Object.keys(record).find((k) => !(k in properties));
    if (extra !== undefined) return at(join(path, extra), `unknown field (expected one of ${Object.keys(properties).map((k) => `'${k}'`).join(', ')})`);
  }
  return fallback(s, value, path);
}

function describeExpected(s: Schema): string {
  if (kindOf(s) === 'Union') {
    const members = s['anyOf'] as Schema[];
    if (members.every((m) => kindOf(m) === 'Literal')) return `one of ${members.map((m) => literal(m['const'])).join(', ')}`;
    const names = [...new Set(members.map(typeName))];
    return names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names.at(-1)}` : names[0]!;
  }
  return typeName(s);
}

function explainRecord(s: Schema, value: unknown, path: string): Explanation {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return at(path, `expected an object, got ${describeValue(value)}`);
  const patterns = Object.values((s['patternProperties'] as Record<string, Schema> | undefined) ?? {});
  const itemSchema = patterns[0];
  if (itemSchema) {
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      if (!Value.Check(itemSchema, item)) return explain(itemSchema, item, join(path, key));
    }
  }
  return fallback(s, value, path);
}

function explainArray(s: Schema, value: unknown, path: string): Explanation {
  if (!Array.isArray(value)) return at(path, `expected an array, got ${describeValue(value)}`);
  const min = s['minItems'] as number | undefined;
  const max = s['maxItems'] as number | undefined;
  if (min !== undefined && value.length < min) return at(path, `expected at least ${min} item${min === 1 ? '' : 's'}, got ${value.length}`);
  if (max !== undefined && value.length > max) return at(path, `expected at most ${max} item${max === 1 ? '' : 's'}, got ${value.length}`);
  const items = s['items'] as Schema | undefined;
  if (items) {
    for (let i = 0; i < value.length; i++) if (!Value.Check(items, value[i])) return explain(items, value[i], join(path, i));
  }
  return fallback(s, value, path);
}

function explainString(s: Schema, value: unknown, path: string): Explanation {
  if (typeof value !== 'string') return at(path, `expected a string, got ${describeValue(value)}`);
  const min = s['minLength'] as number | undefined;
  const max = s['maxLength'] as number | undefined;
  if (min !== undefined && value.length < min) return at(path, min === 1 ? 'expected a non-empty string, got ""' : `expected at least ${min} characters, got ${value.length}`);
  if (max !== undefined && value.length > max) return at(path, `expected at most ${max} characters, got ${value.length}`);
  if (typeof s['pattern'] === 'string' && !new RegExp(s['pattern']).test(value)) return at(path, `expected a string matching ${s['pattern']}, got ${describeValue(value)}`);
  return fallback(s, value, path);
}

function explainNumber(s: Schema, value: unknown, path: string): Explanation {
  const integer = kindOf(s) === 'Integer';
  if (typeof value !== 'number' || !Number.isFinite(value)) return at(path, `expected ${integer ? 'an integer' : 'a number'}, got ${describeValue(value)}`);
  if (integer && !Number.isInteger(value)) return at(path, `expected an integer, got ${describeValue(value)}`);
  const min = s['minimum'] as number | undefined;
  const max = s['maximum'] as number | undefined;
  const exMin = s['exclusiveMinimum'] as number | undefined;
  const exMax = s['exclusiveMaximum'] as number | undefined;
  const range = (): string => {
    if (min !== undefined && max !== undefined) return min === max ? `exactly ${min}` : `from ${min} to ${max}`;
    if (min !== undefined) return `at least ${min}`;
    if (max !== undefined) return `at most ${max}`;
    return exMin !== undefined ? `more than ${exMin}` : `less than ${exMax}`;
  };
  const noun = integer ? 'an integer' : 'a number';
  if ((min !== undefined && value < min) || (max !== undefined && value > max) || (exMin !== undefined && value <= exMin) || (exMax !== undefined && value >= exMax)) {
    return at(path, `expected ${noun} ${range()}, got ${value}`);
  }
  return fallback(s, value, path);
}
