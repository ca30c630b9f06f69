/**
 * The one app every adapter serves in the scenario suite, written once against the core API so
 * each adapter test only maps its framework's request/response onto it.
 */
import { currentSession } from '../../src/core/context.js';
import type { Session } from '../../src/core/session.js';
import { NoContextError } from '../../src/errors.js';
import type { JsonValue } from '../../src/types.js';

export interface ScenarioReply {
  status: number;
  body: unknown;
  /** The app sets its own cookie too; the adapter must not clobber it. */
  appCookie?: string;
  /** The app's own Cache-Control. */
  cacheControl?: string;
}

type AnySession = Session<Record<string, JsonValue>>;

async function readThroughContext(key: string): Promise<JsonValue | undefined> {
  await new Promise((resolve) => setTimeout(resolve, 1));
  const session = currentSession<Record<string, JsonValue>>();
  await session.load();
  return session.get(key);
}

/**
 * What the scenario app does between two mounts of the adapter (`StartMounted`): it uses the
 * session the first mount gave it, as a middleware between them would.
 */
export async function betweenMounts(load: () => Promise<AnySession>): Promise<void> {
  (await load()).set('outer', true);
}

/** Routes: see the scenario suite. `load` gives the loaded session. */
export async function scenarioRoute(method: string, url: URL, load: () => Promise<AnySession>): Promise<ScenarioReply> {
  const path = url.pathname;
  const q = url.searchParams;
  if (path === '/health') return { status: 200, body: 'ok' };
  const session = await load();
  if (method === 'GET' && path === '/session') return { status: 200, body: { user: session.userId, data: session.toJSON() } };
  if (method === 'POST' && path === '/set') {
    session.set(q.get('key')!, JSON.parse(q.get('value')!) as JsonValue);
    return { status: 200, body: { ok: true } };
  }
  if (method === 'POST' && path === '/incr') {
    const key = q.get('key') ?? 'count';
    session.set(key, (session.get(key, 0) as number) + 1);
    return { status: 200, body: { count: session.get(key) } };
  }
  if (method === 'POST' && path === '/login') {
    await session.login(q.get('user')!);
    return { status: 200, body: { user: session.userId } };
  }
  if (method === 'POST' && path === '/logout') {
    await session.logout();
    return { status: 200, body: { user: null } };
  }
  if (method === 'POST' && path === '/fail') {
    session.set('failed', true);
    return { status: 500, body: { error: 'boom' } };
  }
  if (method === 'POST' && path === '/with-app-cookie') {
    session.set('x', 1);
    return { status: 200, body: { ok: true }, appCookie: 'theme=dark; Path=/' };
  }
  if (path === '/cached') {
    // A page the app marks cacheable; with ?set it also stores something (a new session's cookie).
    if (q.has('set')) session.set('viewed', true);
    return { status: 200, body: { ok: true }, cacheControl: q.get('cc')! };
  }
  if (method === 'GET' && path === '/context') {
    let available: boolean;
    try {
      available = currentSession() === session;
    } catch (error) {
      if (!(error instanceof NoContextError)) throw error;
      available = false;
    }
    return { status: 200, body: { available } };
  }
  if (method === 'GET' && path === '/current') return { status: 200, body: { value: (await readThroughContext(q.get('key')!)) ?? null } };
  return { status: 404, body: { error: 'not found' } };
}
