/** In-process request harness for engine tests: a manual clock, an instrumented store, a browser. */
import { createSessions, type Session, type SessionsOptions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { JsonValue } from '../../src/types.js';
import { ManualClock } from './clock.js';
import { CookieJar } from './cookie-jar.js';
import { instrument } from './instrumented-store.js';

export interface VisitOptions {
  status?: number;
  https?: boolean;
  browser?: CookieJar;
  load?: boolean;
  ip?: string;
  userAgent?: string;
  /** The request target, for cookie Path checks (unset: not checked). */
  path?: string;
}

export /** An app with a manual clock, an instrumented memory store and one browser. */
function setup(options: Partial<SessionsOptions> = {}) {
  const clock = new ManualClock();
  const store = instrument(memoryStore({ clock, sweepInterval: 0 }));
  const sessions = createSessions<Record<string, JsonValue>>({ store, clock, ...options });
  const jar = new CookieJar();
  /** One request: open, run, commit, apply cookies. Returns what the response would carry. */
  async function visit<R>(
    fn: (session: Session<Record<string, JsonValue>>) => R | Promise<R>,
    request: VisitOptions = {},
  ) {
    const browser = request.browser ?? jar;
    const session = sessions.open({
      cookieHeader: browser.header(),
      https: request.https ?? false,
      ip: request.ip ?? '192.0.2.1',
      userAgent: request.userAgent ?? 'test-agent',
      ...(request.path !== undefined && { path: request.path }),
    });
    if (request.load !== false) await session.load();
    const value = await fn(session);
    const result = await session.commit(request.status ?? 200);
    browser.apply(result?.setCookie ?? []);
    return { value, result, setCookie: result?.setCookie ?? [], session };
  }
  return { clock, store, sessions, jar, visit };
}

