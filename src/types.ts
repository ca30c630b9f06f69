/**
 * Shared public types: JSON values, session data typing and the app-wide registry.
 * @module coatcheck/types
 */

/** A JSON value: what a session may hold. */
export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/**
 * App-wide typing by declaration merging (the import makes the file a module, so this augments
 * coatcheck's types instead of replacing them):
 * ```ts
 * import 'coatcheck';
 * declare module 'coatcheck' {
 *   interface Register { data: { cart: string[]; language: string } }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface Register {}

/** The shape of session data: what `Register['data']` says, or any JSON object. */
export type RegisteredData = Register extends { data: infer D extends object } ? D : Record<string, JsonValue>;

/**
 * Constraint for a session's data type: an object type whose values are JSON. Not enforced by
 * the type (interfaces could not satisfy an index signature): values are checked when set.
 */
export type SessionData = object;

/** String keys of a data type. */
export type DataKey<T> = Extract<keyof T, string>;

/** The value stored under `K`, required. */
export type DataValue<T, K extends DataKey<T>> = Exclude<T[K], undefined>;

/** Values `JSON.stringify` would store as something else (or drop): refused at run time too. */
export type NotJson = undefined | Date | RegExp | Map<unknown, unknown> | Set<unknown> | bigint | symbol | ((...args: never[]) => unknown);

/**
 * What `set` / `update` / `setDefault` take for a key: its declared type with the non-JSON
 * members above removed at every depth (a `Date` inside an object or array is refused too, and
 * so is `undefined` as a property or element: run-time checks refuse both). An object type whose
 * members are all JSON comes out unchanged.
 */
export type Storable<V> = V extends NotJson
  ? never
  : [V] extends [JsonValue] // already JSON (and JsonValue itself, which must not be unfolded)
    ? V
    : V extends readonly unknown[]
      ? { [I in keyof V]: Storable<Exclude<V[I], undefined>> }
      : V extends object
        ? { [K in keyof V]: Storable<Exclude<V[K], undefined>> }
        : V;
