/**
 * The JSON-only rule for session values: checked when a value is set, and again for keys whose
 * serialized form changed by the time the session is saved (in-place mutation).
 */
import { InvalidValueError } from '../errors.js';
import type { JsonValue } from '../types.js';

/** Deepest nesting accepted; deeper values are refused rather than risking stack exhaustion. */
export const MAX_JSON_DEPTH = 64;

/**
 * Throws {@link InvalidValueError} unless `value` is plain JSON: null, boolean, finite number,
 * string, array or plain object (prototype `Object.prototype` or `null`), with no cycles and
 * no `undefined` anywhere.
 */
export function assertJson(key: string, value: unknown): asserts value is JsonValue {
  const reason = findNonJson(value, 0, new Set());
  if (reason !== null) throw new InvalidValueError(key, reason);
}

/**
 * NUL and unpaired UTF-16 surrogates are legal in JS strings but not storable everywhere
 * (PostgreSQL jsonb refuses both), so they are refused for every store alike.
 */
// eslint-disable-next-line no-control-regex -- NUL is exactly what this rejects
const UNPORTABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The reason `text` cannot be stored alike by every store (see UNPORTABLE), or null. */
export function checkString(text: string): string | null {
  return UNPORTABLE.test(text) ? 'strings may not contain NUL or unpaired surrogates' : null;
}

function findNonJson(value: unknown, depth: number, stack: Set<object>): string | null {
  switch (typeof value) {
    case 'string':
      return checkString(value);
    case 'boolean':
      return null;
    case 'number':
      return Number.isFinite(value) ? null : `${value} is not a finite number`;
    case 'undefined':
      return 'undefined is not JSON (delete the key instead)';
    case 'bigint':
      return 'BigInt is not JSON (store it as a string)';
    case 'function':
      return 'functions are not JSON';
    case 'symbol':
      return 'symbols are not JSON';
  }
  if (value === null) return null;
  if (depth >= MAX_JSON_DEPTH) return `nested deeper than ${MAX_JSON_DEPTH} levels`;
  const object = value as object;
  if (stack.has(object)) return 'it contains a cycle';
  if (Array.isArray(object)) {
    // Not a subclass, and no named properties besides `length` (an own toJSON would make
    // JSON.stringify store something else): a stored array keeps only its indices.
    if (Object.getPrototypeOf(object) !== Array.prototype) return 'array subclasses are not JSON (use a plain array)';
    const own = Object.getOwnPropertyNames(object).length;
    // Fewer own names than indices + `length`: holes (reported below, by index); more: named properties.
    if (own > object.length + 1) return 'arrays with named properties are not JSON (use an object)';
    stack.add(object);
    for (let i = 0; i < object.length; i++) {
      if (!(i in object)) return `array has a hole at index ${i}`;
      const inner = findNonJson(object[i], depth + 1, stack);
      if (inner !== null) return `[${i}]: ${inner}`;
    }
    stack.delete(object);
    return null;
  }
  const proto = Object.getPrototypeOf(object);
  if (proto !== Object.prototype && proto !== null) {
    const name = (object.constructor as { name?: string } | undefined)?.name ?? 'unknown';
    return `${name} instances are not JSON (${plainHint(object)})`;
  }
  if (Object.getOwnPropertySymbols(object).length > 0) return 'symbol keys are not JSON';
  // JSON.stringify calls it even when it is not enumerable: the stored value would be another.
  if (typeof (object as { toJSON?: unknown }).toJSON === 'function') return 'values with a toJSON method are not JSON (store the plain value it returns)';
  stack.add(object);
  for (const name of Object.keys(object)) {
    const badKey = checkString(name);
    if (badKey !== null) return `key ${JSON.stringify(name)}: ${badKey}`;
    const inner = findNonJson((object as Record<string, unknown>)[name], depth + 1, stack);
    if (inner !== null) return `.${name}: ${inner}`;
  }
  stack.delete(object);
  return null;
}

/** How to turn a common non-JSON object into a value that can be stored. */
function plainHint(object: object): string {
  if (object instanceof Date) return 'store date.toISOString() or date.getTime()';
  if (object instanceof Map) return 'store Object.fromEntries(map), or [...map] for non-string keys';
  if (object instanceof Set) return 'store [...set]';
  if (ArrayBuffer.isView(object) || object instanceof ArrayBuffer) return 'store the bytes as a base64 string';
  return 'convert it to a plain object first';
}

/** Parses a JSON object safely; anything else (or a parse failure) gives null. */
export function parseJsonObject(text: string): Record<string, JsonValue> | null {
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
    return value as Record<string, JsonValue>;
  } catch {
    return null;
  }
}

/**
 * Sets an own data property, as data even for `__proto__` (the only accessor a plain object
 * inherits, so every other key takes the fast plain assignment).
 */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** Builds a plain object from entries without ever invoking the `__proto__` setter. */
export function objectFromEntries(entries: Iterable<[string, JsonValue]>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of entries) setOwn(out, k, v);
  return out;
}
