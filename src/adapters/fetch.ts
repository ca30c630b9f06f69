/**
 * Fetch adapter: `(Request) => Response` handlers (Next.js route handlers, Hono, Bun/Deno-style
 * servers, `@hono/node-server`...). Lazy load, one commit after the handler, Set-Cookie appended.
 * @module coatcheck/fetch
 * @example
 * ```ts
 * import { createSessions } from 'coatcheck';
 * import { memoryStore } from 'coatcheck/stores/memory';
 * import { withSessions, getSession } from 'coatcheck/fetch';
 *
 * const sessions = createSessions({ store: memoryStore() });
 * export const handler = withSessions(sessions, async (request) => {
 *   const session = await getSession(request);
 *   session.set('visits', (session.get('visits', 0) as number) + 1);
 *   return new Response(`visit ${session.get('visits')}`);
 * });
 * ```
 */
import { runWithSession } from '../core/context.js';
import type { CommitResult, Session } from '../core/session.js';
import type { Sessions } from '../core/sessions.js';
import { ConfigError } from '../errors.js';
import type { RegisteredData, SessionData } from '../types.js';
import { applyCommit, discardBody, failureToResponse, fetchSessionOf, openFetchSession, reopenedFetchSession, SECOND_SESSION, secondSessionCookie, unsendable } from './fetch-internal.js';
import { checkAdapterOptions, failureResponse } from './shared.js';

export interface FetchAdapterOptions<Rest extends unknown[], R extends Request = Request> {
  /** The client's address, which a Request does not carry (e.g. from the server's socket info). */
  getClientIp?: ((request: R, ...rest: Rest) => string | null | undefined) | undefined;
  /** Builds the response for a failed session (store down → 503...). */
  onError?: ((error: unknown, request: R) => Response | Promise<Response>) | undefined;
}

/**
 * The request's session, loaded. Rejects (never throws) with a ConfigError when no `withSessions`
 * (or `honoSessions`) wrapper opened a session for this request.
 */
export function getSession<T extends SessionData = RegisteredData>(request: Request): Promise<Session<T>> {
  const session = fetchSessionOf(request) as unknown as Session<T> | undefined;
  if (!session) return Promise.reject(new ConfigError(FETCH_NOT_MOUNTED));
  return session.load();
}

/** The request's session handle without loading it. Throws a ConfigError where no wrapper opened one. */
export function sessionHandle<T extends SessionData = RegisteredData>(request: Request): Session<T> {
  const session = fetchSessionOf(request);
  if (!session) throw new ConfigError(FETCH_NOT_MOUNTED);
  return session as unknown as Session<T>;
}

const FETCH_NOT_MOUNTED =
  'withSessions: this request has no session: the handler is not wrapped in withSessions(sessions, handler) (or, on Hono, app.use(honoSessions(sessions)) does not run before it), or it was given another Request than the one the wrapper received';

const IP_BINDING_WITHOUT_ADDRESS = 'withSessions: binding.ip needs the client address, which a Request does not carry: pass getClientIp(request, ...rest)';
const IP_BINDING_NO_ADDRESS = 'withSessions: binding.ip needs the client address, and getClientIp(request, ...rest) gave none for this request';

/**
 * Wraps a Fetch handler so each request gets a session (also via `currentSession()`). The handler
 * may take a Request subtype (Next.js's `NextRequest`); the wrapper then takes the same type.
 */
export function withSessions<T extends SessionData, Rest extends unknown[], R extends Request = Request>(
  sessions: Sessions<T>,
  handler: (request: R, ...rest: Rest) => Response | Promise<Response>,
  options: FetchAdapterOptions<Rest, R> = {},
): (request: R, ...rest: Rest) => Promise<Response> {
  if (!sessions || typeof sessions.open !== 'function') throw new ConfigError('withSessions(sessions, handler): pass the object createSessions() returned');
  if (typeof handler !== 'function') throw new ConfigError('withSessions(sessions, handler): handler must be a function');
  checkAdapterOptions('withSessions', options, { getClientIp: 'function', onError: 'function' });
  // A Request does not carry the client's address, and a session bound to no address would be
  // bound to nothing: refused where it is first used (mounted inside another mount, this one
  // reuses that mount's session and its address).
  const missingAddress = !sessions.options.binding.ip ? undefined : options.getClientIp ? IP_BINDING_NO_ADDRESS : IP_BINDING_WITHOUT_ADDRESS;
  const contextual = sessions.options.context;
  const answer = (error: unknown, request: R): Response | Promise<Response> => (options.onError ? options.onError(error, request) : failureToResponse(error));
  return async function coatcheckFetch(request: R, ...rest: Rest): Promise<Response> {
    // Wrapped twice (a wrapped handler called from a wrapped one, or inside Hono's middleware):
    // the outer mount's session is the request's one, and that mount commits it.
    const reopened = reopenedFetchSession(sessions, request, 'withSessions');
    if (reopened) return runWithSession(reopened, () => handler(request, ...rest), contextual);
    const getClientIp = options.getClientIp;
    const session = openFetchSession(sessions, request, getClientIp && (() => getClientIp(request, ...rest)), undefined, missingAddress);
    let response: Response;
    try {
      response = await runWithSession(session, () => handler(request, ...rest), contextual);
    } catch (error) {
      const { status } = failureResponse(error);
      if (status >= 500) {
        // Nothing is saved: a change made later (a timer the handler left) throws, never lost.
        session.closeUnsaved();
        // Not coatcheck's (an http-errors 403 too): answered elsewhere, without the cookie a
        // commit may need (a login's, a new session's).
        if (status === 500) throw error;
        return answer(error, request);
      }
      // A coatcheck 4xx (ReauthenticationRequiredError after session.set('returnTo', …)) is
      // answered here: saved as an answer would be, its cookie on that answer.
      let result: CommitResult | null;
      try {
        result = await session.commit(status);
      } catch (commitError) {
        return answer(commitError, request);
      }
      return applyCommit(await answer(error, request), result);
    }
    if (unsendable(response)) {
      // Response.error(): a failure, as a 5xx is. Nothing is saved, and no copy of it can be made.
      session.closeUnsaved();
      return response;
    }
    let result: CommitResult | null;
    try {
      result = await session.commit(response.status);
    } catch (error) {
      discardBody(response);
      return answer(error, request);
    }
    if (result !== null && secondSessionCookie(response, result)) {
      discardBody(response);
      return answer(new ConfigError(`withSessions: ${SECOND_SESSION}`), request);
    }
    return applyCommit(response, result);
  };
}
