/**
 * What the demo does with a session, shared by the HTML pages and the JSON API so both behave the
 * same: the counter, the cart, the note, the language, signing in, and managing devices.
 */
import { ConfigError, InvalidValueError, SessionTooLargeError, type DeviceSummary, type JsonValue, type Session, type Sessions } from '../src/index.js';
import { isReservedUser } from '../src/core/reserved-users.js';
import { HttpError } from './http.js';

export type DemoData = Record<string, JsonValue>;
export type DemoSession = Session<DemoData>;
export type DemoSessions = Sessions<DemoData>;

export const MAX_NAME_LENGTH = 64;
export const MAX_NOTE_LENGTH = 280;
export const MAX_FLASH_LENGTH = 500;

/** Things a coat check would plausibly hand out; the cart holds item → quantity. */
export const CATALOGUE = ['coat', 'hat', 'scarf', 'umbrella', 'gloves'] as const;
export const LANGUAGES = { en: 'English', de: 'Deutsch' } as const;

/**
 * A display name: trimmed, 1–64 characters, no control characters (NUL included), no unpaired
 * UTF-16 surrogates (a session can't hold them: they would come back as U+FFFD, another user), and
 * none of the ids the library reserves (`__guest__`, `__moved__`), which `login()` refuses.
 */
export function checkUserName(raw: unknown): string {
  const name = typeof raw === 'string' ? raw.trim() : '';
  // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new HttpError(400, `the user name must be 1 to ${MAX_NAME_LENGTH} characters without control characters`);
  }
  // With the u flag, \p{Cs} matches only surrogates that are not part of a pair.
  if (/\p{Cs}/u.test(name)) throw new HttpError(400, 'the user name contains an unpaired UTF-16 surrogate, which a session can\'t hold');
  if (isReservedUser(name)) throw new HttpError(400, `the user name ${JSON.stringify(name)} is reserved by coatcheck; choose another`);
  return name;
}

export function checkFlash(raw: unknown): string {
  if (typeof raw !== 'string' || raw.trim() === '' || raw.length > MAX_FLASH_LENGTH) {
    throw new HttpError(400, `"message" must be a non-empty string of at most ${MAX_FLASH_LENGTH} characters`);
  }
  return raw;
}

export function count(session: DemoSession): number {
  const value = session.get('count');
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : 0;
}

export function incrementCounter(session: DemoSession): number {
  const next = count(session) + 1;
  session.set('count', next);
  return next;
}

export function resetCounter(session: DemoSession): void {
  if (session.has('count')) session.delete('count');
}

/** The cart as item → quantity, ignoring anything malformed (the API can store any JSON there). */
export function readCart(session: DemoSession): Map<string, number> {
  const raw = session.get('cart');
  const cart = new Map<string, number>();
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return cart;
  for (const [item, quantity] of Object.entries(raw)) {
    if (typeof quantity === 'number' && Number.isSafeInteger(quantity) && quantity > 0) cart.set(item, quantity);
  }
  return cart;
}

function writeCart(session: DemoSession, cart: Map<string, number>): void {
  if (cart.size === 0) session.pop('cart', null);
  else session.set('cart', Object.fromEntries(cart));
}

export function checkItem(raw: unknown): (typeof CATALOGUE)[number] {
  const item = CATALOGUE.find((known) => known === raw);
  if (item === undefined) throw new HttpError(400, `unknown item; choose one of ${CATALOGUE.join(', ')}`);
  return item;
}

export function addToCart(session: DemoSession, item: string): number {
  const cart = readCart(session);
  const quantity = Math.min((cart.get(item) ?? 0) + 1, 99);
  cart.set(item, quantity);
  writeCart(session, cart);
  return quantity;
}

export function removeFromCart(session: DemoSession, item: string): void {
  const cart = readCart(session);
  cart.delete(item);
  writeCart(session, cart);
}

export function clearCart(session: DemoSession): void {
  session.pop('cart', null);
}

export function setNote(session: DemoSession, raw: unknown): string {
  const note = typeof raw === 'string' ? raw.trim() : '';
  if (note.length > MAX_NOTE_LENGTH) throw new HttpError(400, `the note is longer than ${MAX_NOTE_LENGTH} characters`);
  if (note === '') session.pop('note', null);
  else session.set('note', note);
  return note;
}

export function checkLanguage(raw: unknown): keyof typeof LANGUAGES {
  if (raw === 'en' || raw === 'de') return raw;
  throw new HttpError(400, `unknown language; choose one of ${Object.keys(LANGUAGES).join(', ')}`);
}

export function language(session: DemoSession): keyof typeof LANGUAGES {
  return session.get('language') === 'de' ? 'de' : 'en';
}

/**
 * Stores any JSON value under a key, refusing (400) what the session can't hold and (413) what
 * would push the session's data over `maxDataSize`. `set()` checks the value itself first (plain
 * JSON, nesting depth, its own size), so measuring it afterwards can't overflow the stack. The
 * whole session, engine metadata (CSRF token, flash messages) included, is only checked when it
 * is saved; a 413 from there is answered by `onError` in app.ts.
 */
export function setDataKey(session: DemoSession, key: string, value: unknown, maxDataSize: number): void {
  const previous = session.has(key) ? session.get(key) : undefined;
  try {
    session.set(key, value as JsonValue);
  } catch (error) {
    if (error instanceof InvalidValueError) throw new HttpError(400, error.message.replace(/^coatcheck: /, ''));
    if (error instanceof SessionTooLargeError) throw new HttpError(413, `the value alone is ${error.size} bytes, over the session's limit of ${maxDataSize}`);
    throw error;
  }
  let size = 0;
  for (const [k, v] of session.entries()) size += Buffer.byteLength(k) + Buffer.byteLength(JSON.stringify(v));
  if (size > maxDataSize) {
    // Put the session back as it was, so the refusal is all this request does.
    if (previous === undefined) session.delete(key);
    else session.set(key, previous);
    throw new HttpError(413, `the session would hold ${size} bytes, over its limit of ${maxDataSize}`);
  }
}

export function requireUser(session: DemoSession): string {
  const user = session.userId;
  if (user === null) throw new HttpError(401, 'sign in first');
  return user;
}

/** The cookie store keeps sessions only in browsers, so there is nothing to list or revoke. */
async function serverSide<R>(run: () => Promise<R>): Promise<R> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof ConfigError) throw new HttpError(501, 'listing and revoking devices needs a server-side store (not cookie:)');
    throw error;
  }
}

export function listDevices(sessions: DemoSessions, session: DemoSession): Promise<DeviceSummary[]> {
  const user = requireUser(session);
  return serverSide(() => sessions.listByUser(user, { current: session.handle }));
}

/**
 * Signs out one of the user's own devices. Handles of other users' sessions are refused as if
 * they didn't exist, so one user can't probe or end another's sessions. The current device is
 * signed out like a logout (revoking its record under this request would fail the save).
 */
export async function revokeDevice(sessions: DemoSessions, session: DemoSession, handle: string): Promise<'current' | 'revoked'> {
  const devices = await listDevices(sessions, session);
  const device = devices.find((d) => d.id === handle);
  if (!device) throw new HttpError(404, 'no such session among yours');
  if (device.current) {
    await session.logout();
    return 'current';
  }
  await serverSide(() => sessions.revoke(handle));
  return 'revoked';
}

export function revokeOtherDevices(sessions: DemoSessions, session: DemoSession): Promise<number> {
  const user = requireUser(session);
  const keep = session.handle;
  return serverSide(() => sessions.revokeUser(user, { except: keep === null ? [] : [keep] }));
}
