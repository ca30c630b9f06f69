/**
 * The node:http adapter's machinery, shared with the Express, Fastify and Koa adapters: opening a
 * request's session and the response hook that commits it before the head goes out. Not a
 * package entry point (no `exports` subpath reaches it): what apps use is `coatcheck/node`.
 * @module
 */
import { type IncomingMessage, OutgoingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import { Http2ServerResponse } from 'node:http2';
import type { CommitResult, Session } from '../core/session.js';
import type { Sessions } from '../core/sessions.js';
import { type Awaitable, isPromiseLike } from '../stores/types.js';
import type { SessionData } from '../types.js';
import type { NodeAdapterOptions, NodeRequest } from './node.js';
import { cacheControlWithCookie, clientIp, defaultFailure, FAILED_ANSWER_HEADERS, isHttps, SESSION_CACHE_CONTROL, varyWithCookie } from './shared.js';

/** Where the session hangs on the request: a symbol property is far cheaper than a WeakMap. */
const SESSION = Symbol.for('coatcheck.session');
type WithSession = IncomingMessage & { [SESSION]?: object };

/** The session already attached to this request, if any (an adapter mounted twice reuses it). */
export function attachedSession(req: NodeRequest): object | undefined {
  return (req as WithSession | undefined)?.[SESSION];
}

/** How a framework decides the protocol and client IP (Express: its own `trust proxy` setting). */
export interface ClientFacts {
  https(): boolean;
  /** Read lazily, at most once: only creating, sealing or IP-binding a session needs it. */
  ip(): string | null;
}

/**
 * A request's facts as the framework decided them, the IP read on first use. A class, not an
 * object literal with a getter: such literals take V8's slow path (~0.5 µs each, measured).
 */
class DecidedRequestInfo {
  readonly https: boolean;
  #ip: string | null | undefined;
  constructor(
    readonly cookieHeader: string | undefined,
    private readonly client: ClientFacts,
    readonly userAgent: string | null,
    readonly path: string | undefined,
  ) {
    this.https = client.https();
  }

  get ip(): string | null {
    return this.#ip === undefined ? (this.#ip = this.client.ip()) : this.#ip;
  }
}

/**
 * Opens the session for a request (used by the Express adapter too). `client` overrides how the
 * protocol and IP are determined.
 */
export function attachSession<T extends SessionData>(
  sessions: Sessions<T>,
  req: IncomingMessage,
  res: ServerResponse,
  options: NodeAdapterOptions = {},
  client?: ClientFacts,
  /** Put the session on `req` for a second mount to find (Fastify: no, see its adapter). */
  mark = true,
): Session<T> {
  const trustProxy = sessions.options.trustProxy;
  // Only a cookie with a Path of its own needs the request's path. Read now, not when the session
  // is first used: by then a mounted sub-app (koa-mount, an Express router) may have cut its
  // prefix off `req.url`. Express keeps it in `originalUrl`.
  const path = sessions.options.cookie.path === '/' ? undefined : ((req as { originalUrl?: string }).originalUrl ?? req.url);
  const session = sessions.open(
    () => {
      if (client) return new DecidedRequestInfo(req.headers.cookie, client, header(req, 'user-agent') ?? null, path);
      return {
        cookieHeader: req.headers.cookie,
        https: isHttps(Boolean((req.socket as { encrypted?: boolean }).encrypted), header(req, 'x-forwarded-proto'), trustProxy),
        ip: clientIp(req.socket.remoteAddress, header(req, 'x-forwarded-for'), trustProxy),
        userAgent: header(req, 'user-agent') ?? null,
        path,
      };
    },
    // First used after the response ended (past an await): no response left to carry a change.
    () => (res.writableEnded ? session.closeUnsaved() : interceptResponse(session, req, res, options)),
  );
  if (mark) (req as WithSession)[SESSION] = session;
  return session;
}

/**
 * A handler `withSessions` wraps failed (threw, or its promise rejected): the error is answered while
 * the response can still carry an answer, or the connection is closed, or (the response having
 * ended) `onError` is told.
 */
export function failRequest(error: unknown, req: IncomingMessage, res: ServerResponse, options: NodeAdapterOptions): void {
  if (res.writableEnded || endHeldBack(res)) {
    // The app ended its response before throwing (sent, or held for a pending commit): it
    // goes out as the app wrote it. Closing the socket now could cut its body short. The error
    // is still told, never dropped without a trace.
    if (options.onError) process.nextTick(reportLate, options.onError, error, req, res);
    else warnErrorAfterEnd(error);
    return;
  }
  if (abortHeld(res, error instanceof Error ? error : new Error(String(error)))) {
    // An unfinished response held for a pending commit: closed once the commit settles, as a
    // response whose headers had already gone would be.
    return;
  }
  if (!headersReallySent(res)) {
    // An unhandled error is the app's 500 (or our 503 for a store failure): nothing is saved.
    respondWithError(error, req, res, options);
  } else {
    res.destroy(error instanceof Error ? error : undefined);
  }
}

/** A request header's first value. */
export function header(req: NodeRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function respondWithError(error: unknown, req: IncomingMessage, res: ServerResponse, options: NodeAdapterOptions): void {
  res.statusCode = 500;
  // The reason phrase is Node's for the status: one the app gave (maybe the invalid one that
  // failed the replay) would go out with the error answer, or throw again.
  if (!isHttp2(res)) res.statusMessage = '';
  if (options.onError) {
    // The app's own failure answer keeps the headers that still apply (CORS, security headers);
    // those of the failed answer go, with its Content-Type (the error body is not of that type).
    for (const name of FAILED_ANSWER_HEADERS) res.removeHeader(name);
    res.removeHeader('content-type');
    // As the default answer: a failure is never cached (the app's page may have said public).
    res.setHeader('Cache-Control', 'no-store');
    options.onError(error, req, res);
    return;
  }
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  const { status, body } = defaultFailure(error);
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

/** The one thing the response hook needs from a session. */
type Committable = { commit(status: number): Promise<CommitResult | null>; commitNow(status: number): Awaitable<CommitResult | null> };

type Deferred = { method: 'write' | 'end' | 'flushHeaders'; args: unknown[] };

const INTERCEPT = Symbol('coatcheck.intercept');

/** Per-response state of the hook; the hook's methods are shared functions that find it here. */
/**
 * Its own `HookMethods` are the methods that were in place before ours (maybe another
 * middleware's wrappers; the header methods as they were when the hook was installed, which
 * `holdFinal` guards).
 */
interface Interception extends HookMethods {
  session: Committable;
  /** The replacement methods this hook installed (shared, or a second engine's own). */
  methods: HookMethods;
  req: IncomingMessage;
  options: NodeAdapterOptions;
  head: unknown[] | null;
  queue: Deferred[];
  /** The app has called `end`: its response is final, and whatever is sent after that is dropped. */
  ended: boolean;
  /** True while `replay` sends the held calls (Node's own writeHead sets headers through `this`). */
  replaying: boolean;
  /** Status as it was when the app's ended response was held for an asynchronous commit. */
  final: { status: number; message: string } | null;
  /** A held write answered false (the commit is pending): 'drain' is owed once it settles. */
  owesDrain: boolean;
  /** Bytes of the writes held for a pending commit (as Node's buffer counts toward its high-water mark). */
  heldBytes: number;
  /** The handler failed while its unfinished response was held: close it instead of sending it. */
  aborted: Error | null;
  /** A later hook on the same response (a second engine), chained onto this one. */
  next: Interception | null;
  /** This hook made `res.headersSent` read true for a held head or body (see `reportHeadersSent`). */
  reportsSent: boolean;
  /** This hook made `res.writableEnded` read true for an end it holds (see `reportEnded`). */
  reportsEnded: boolean;
  /**
   * The head went out before the commit settled: it had left before the session was used, or
   * Node's own write/end sent it (see `sendHeadNow`). No cookie can be added; while the commit is
   * pending the body passes and only the app's `end` waits, so a failed save cuts it short.
   */
  late: boolean;
  /**
   * 'holding' until the first write/end, 'committing' during the store write, then 'passing'; or
   * 'replaced' when the commit failed and the failure answer replaced the app's response.
   */
  phase: 'holding' | 'committing' | 'passing' | 'replaced';
}

/** `_implicitHeader`: Node's own, which its write/end/flushHeaders call while no head is out. */
type Intercepted = ServerResponse & { [INTERCEPT]?: Interception; _implicitHeader?: () => void };

interface HookMethods {
  writeHead: ServerResponse['writeHead'];
  write: ServerResponse['write'];
  end: ServerResponse['end'];
  flushHeaders: ServerResponse['flushHeaders'];
  implicitHeader: () => void;
  setHeader: ServerResponse['setHeader'];
  removeHeader: ServerResponse['removeHeader'];
}

/** A call that arrives after the response is final: dropped, its callback told so (never a hang). */
function dropped(args: unknown[]): void {
  const callback = args.find((arg) => typeof arg === 'function') as ((error?: Error) => void) | undefined;
  if (callback) process.nextTick(callback, new Error('coatcheck: the response had already ended; this write was dropped'));
}

/** The replacement methods, finding their state through `stateOf`. */
function hookMethods(stateOf: (res: Intercepted) => Interception): HookMethods {
  return {
    writeHead: function deferredWriteHead(this: Intercepted, ...args: unknown[]) {
      const state = stateOf(this);
      // Node's own end() calls writeHead while replaying: only a call before that is dropped.
      if (state.ended && state.phase !== 'passing') return this;
      if (passes(this, state)) return (state.writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
      if (state.phase !== 'replaced') {
        state.head = args;
        // HTTP/2's own end, through a reference taken before the hook was installed, is under way
        // (`res.end(await …)`): it ends the stream as soon as this returns. HTTP/1's equivalent
        // is caught at `_implicitHeader`, which HTTP/2 does not have.
        if (!state.ended && this.writableEnded && isHttp2(this)) {
          sendBeforeHttp2End(this, state);
          return this;
        }
        noteHeldStatus(this, args);
        reportHeadersSent(this, state);
      }
      return this;
    } as ServerResponse['writeHead'],
    write: function deferredWrite(this: Intercepted, ...args: unknown[]) {
      const state = stateOf(this);
      // HTTP/2's end(chunk) sends its chunk through this.write: part of the call being replayed.
      if (state.replaying) return (state.write as (...a: unknown[]) => boolean).apply(this, args);
      if (state.ended || (state.phase === 'replaced' && this.writableEnded)) {
        dropped(args);
        return true; // true: a caller waiting for 'drain' would wait forever
      }
      if (passes(this, state)) return (state.write as (...a: unknown[]) => boolean).apply(this, args);
      state.queue.push({ method: 'write', args });
      commitBeforeHeaders(this, state);
      if (state.phase === 'replaced') return true;
      // Sent in this call (a synchronous store, or a head that was out already): the real backpressure.
      if (state.phase === 'passing' || state.late) return !needsDrain(this);
      reportHeadersSent(this, state);
      // Held for a pending commit: as Node's own buffer does, a writer may go on until the held
      // bytes reach the high-water mark, then waits for 'drain' (so a piped body is not buffered
      // whole meanwhile). Replaying that much makes the layer below send a 'drain' of its own: a
      // wrapper such as compression, which takes 'drain' listeners off `res`, hears that one.
      state.heldBytes += chunkBytes(args[0], args[1]);
      if (state.heldBytes < this.writableHighWaterMark) return true;
      state.owesDrain = true;
      return false;
    } as ServerResponse['write'],
    end: function deferredEnd(this: Intercepted, ...args: unknown[]) {
      const state = stateOf(this);
      // A second end (an error handler answering a late throw) must not reach an ended response.
      if (state.ended || (state.phase === 'replaced' && this.writableEnded)) {
        dropped(args);
        return this;
      }
      // Not while committing, even late: the end waits for the commit's outcome.
      if (state.phase !== 'committing' && passes(this, state)) return (state.end as (...a: unknown[]) => ServerResponse).apply(this, args);
      state.ended = true;
      state.queue.push({ method: 'end', args });
      commitBeforeHeaders(this, state);
      if (state.phase === 'committing') {
        if (!state.late) holdFinal(this, state);
        reportEnded(this, state);
      }
      return this;
    } as ServerResponse['end'],
    flushHeaders: function deferredFlushHeaders(this: Intercepted) {
      const state = stateOf(this);
      if (state.ended) return;
      if (passes(this, state)) return state.flushHeaders.call(this);
      if (state.phase === 'replaced') return;
      state.queue.push({ method: 'flushHeaders', args: [] });
      commitBeforeHeaders(this, state);
      if (state.phase === 'committing' && !state.late) reportHeadersSent(this, state);
    },
    // Node's own write/end/flushHeaders call this when no head is out yet: reached while the
    // hook holds, it is one taken before the hook was installed (ours would have held first).
    implicitHeader: function implicitHeader(this: Intercepted) {
      const state = stateOf(this);
      if ((state.phase === 'holding' || (state.phase === 'committing' && !state.late)) && hooksOnTop(this, state)) sendHeadNow(this);
      else state.implicitHeader.call(this);
    },
    // Installed only by `holdFinal`: after the app's end, header changes are dropped too.
    setHeader: function finalSetHeader(this: Intercepted, name: string, value: number | string | readonly string[]) {
      const state = stateOf(this);
      if (!state.ended || state.replaying) state.setHeader.call(this, name, value);
      return this;
    } as ServerResponse['setHeader'],
    removeHeader: function finalRemoveHeader(this: Intercepted, name: string) {
      const state = stateOf(this);
      if (!state.ended || state.replaying) state.removeHeader.call(this, name);
    },
  };
}

/**
 * The app ended its response while an asynchronous commit is pending: that response is final. Its
 * status is noted and header changes are dropped from now on, so an error handler answering a late
 * throw meanwhile (Express's) changes nothing, and cannot throw once the replay has sent the head.
 */
function holdFinal(res: Intercepted, state: Interception): void {
  if (state.final !== null) return;
  state.final = { status: res.statusCode, message: isHttp2(res) ? '' : res.statusMessage };
  res.setHeader = state.methods.setHeader;
  res.removeHeader = state.methods.removeHeader;
}

/**
 * Adapters that commit on their own path before the framework writes (Fastify's `onSend`): the
 * hook on `res` for `session` has nothing left to do and lets every call straight through,
 * unless the app already wrote on `res` itself (then the hook, holding that, commits as usual).
 */
export function committedElsewhere(res: ServerResponse, session: object): void {
  for (let state = (res as Intercepted)[INTERCEPT] ?? null; state !== null; state = state.next) {
    if (state.session !== session) continue;
    if (state.phase === 'holding' && state.head === null && state.queue.length === 0) state.phase = 'passing';
    return;
  }
}

/** True when the app has already called `end` and the hook holds the response for a pending commit. */
function endHeldBack(res: ServerResponse): boolean {
  for (let state = (res as Intercepted)[INTERCEPT] ?? null; state !== null; state = state.next) {
    if (state.phase === 'committing' && state.ended) return true;
  }
  return false;
}

/**
 * The handler failed while the hook holds its unfinished response for a pending commit: the
 * response is closed instead of sent once the commit settles (as when headers had already gone).
 */
function abortHeld(res: ServerResponse, error: Error): boolean {
  let aborted = false;
  for (let state = (res as Intercepted)[INTERCEPT] ?? null; state !== null; state = state.next) {
    // A head the app wrote but that is still held would override the error answer's status.
    if (state.phase === 'holding') {
      state.head = null;
      stopReportingSent(res, state);
    }
    if (state.phase === 'committing' && !state.ended) {
      state.aborted = error;
      aborted = true;
    }
  }
  return aborted;
}

/**
 * Whether a call goes straight to the methods underneath: always after a successful commit; after
 * a failed one only until the failure answer has ended the response (an `onError` may write it
 * in several calls); during a late commit (the head is out) for all but `end`.
 */
function passes(res: Intercepted, state: Interception): boolean {
  return state.phase === 'passing' || (state.phase === 'replaced' && !res.writableEnded) || (state.phase === 'committing' && state.late);
}

/** Shared by every response: the state sits under a symbol, so no closures are made per request. */
const SHARED_HOOK = hookMethods((res) => res[INTERCEPT] as Interception);

/**
 * Holds back writeHead/write/end until the session is committed (an async store write), then
 * adds the session headers and replays the calls in order. Installed only once the session is
 * used, so requests that never touch it run untouched. The methods stay in place afterwards,
 * passing straight through: restoring them would cost more property writes on every response
 * (measured on Express's `res`). A second hook on the same response (two engines, or nested
 * adapters) gets its own closures, chaining onto the first instead of sharing its state.
 */
function interceptResponse(session: Committable, req: IncomingMessage, res: ServerResponse, options: NodeAdapterOptions): void {
  const target = res as Intercepted;
  const first = target[INTERCEPT] === undefined;
  const state: Interception = {
    session,
    methods: SHARED_HOOK,
    req,
    options,
    writeHead: res.writeHead,
    write: res.write,
    end: res.end,
    flushHeaders: res.flushHeaders,
    implicitHeader: target._implicitHeader as () => void,
    setHeader: res.setHeader,
    removeHeader: res.removeHeader,
    head: null,
    queue: [],
    ended: false,
    replaying: false,
    owesDrain: false,
    heldBytes: 0,
    final: null,
    aborted: null,
    next: null,
    reportsSent: false,
    reportsEnded: false,
    late: false,
    phase: 'holding',
  };
  if (first) target[INTERCEPT] = state;
  else {
    state.methods = hookMethods(() => state);
    let last = target[INTERCEPT] as Interception;
    while (last.next !== null) last = last.next;
    last.next = state;
  }
  const methods = state.methods;
  res.writeHead = methods.writeHead;
  res.write = methods.write;
  res.end = methods.end;
  res.flushHeaders = methods.flushHeaders;
  target._implicitHeader = methods.implicitHeader;
}

function commitBeforeHeaders(res: Intercepted, state: Interception): void {
  if (state.phase !== 'holding') return;
  state.phase = 'committing';
  // Headers left before the session was used: the store write still happens, cookies cannot.
  state.late = headersReallySent(res);
  const status = !state.late && typeof state.head?.[0] === 'number' ? (state.head[0] as number) : res.statusCode;
  let outcome: Awaitable<CommitResult | null>;
  try {
    outcome = state.session.commitNow(status);
  } catch (error) {
    commitFailed(res, state, error);
    return;
  }
  // A synchronous store (or nothing to write) sends the response in this very call.
  if (isPromiseLike(outcome)) {
    settleLater(res, state, outcome);
    // Late: what the app wrote goes out now; only its end waits for the commit.
    if (state.late) sendHeld(res, state, true);
  } else {
    sendCommitted(res, state, outcome);
  }
}

function settleLater(res: Intercepted, state: Interception, outcome: PromiseLike<CommitResult | null>): void {
  outcome.then(
    (result) => sendCommitted(res, state, result),
    (error: unknown) => commitFailed(res, state, error),
  );
}

/** `committed`, but a failed replay (an invalid header the app gave writeHead, say) is answered, never left hanging. */
function sendCommitted(res: Intercepted, state: Interception, result: CommitResult | null): void {
  try {
    committed(res, state, result);
  } catch (error) {
    // Answer 500 while that is possible; otherwise close the connection.
    if (!headersReallySent(res)) commitFailed(res, state, error);
    else res.destroy(error instanceof Error ? error : undefined);
  }
}

function committed(res: Intercepted, state: Interception, result: CommitResult | null): void {
  stopReportingSent(res, state);
  if (state.late) warnCookieLost(result);
  if (state.aborted !== null) {
    state.phase = 'replaced';
    discardHeld(state);
    res.destroy(state.aborted);
    return;
  }
  if (responseClosed(res)) {
    // Closed while the commit was pending (an error handler that believed the held head had gone
    // out, or the client): nothing held can be sent now. A writer waiting for 'drain' goes on.
    state.phase = 'replaced';
    discardHeld(state);
    payDrain(res, state);
    return;
  }
  if (!state.late) addSessionHeaders(res, state, result);
  replay(res, state);
}

/**
 * Adds the session's headers to the response about to go out: Cache-Control and Vary always, and
 * the cookies once the commit's `result` is known (null: a head sent before it was).
 */
function addSessionHeaders(res: Intercepted, state: Interception, result: CommitResult | null): void {
  const setHeader = state.setHeader;
  if (state.final !== null) {
    res.statusCode = state.final.status;
    if (!isHttp2(res)) res.statusMessage = state.final.message;
  }
  // The head as it is now (the one replay sends), its headers copied before we add to them.
  const headers = headObject(state.head);
  if (result && result.setCookie.length > 0) {
    // A response that hands out a session is not for a shared cache, whatever the app set (shared.ts).
    if (!updateInHead(headers, 'cache-control', safeCacheControl)) {
      const current = res.getHeader('cache-control');
      const safe = cacheControlWithCookie(current);
      if (safe !== current) setHeader.call(res, 'Cache-Control', safe);
    }
  } else if (!res.getHeader('cache-control') && !updateInHead(headers, 'cache-control')) setHeader.call(res, 'Cache-Control', SESSION_CACHE_CONTROL);
  // Vary given in writeHead's own headers gets Cookie there: writeHead's value would win.
  if (!updateInHead(headers, 'vary', (value) => varyWithCookie(value as Parameters<typeof varyWithCookie>[0]))) {
    setHeader.call(res, 'Vary', varyWithCookie(res.getHeader('vary')));
  }
  if (result && result.setCookie.length > 0) appendSetCookie(res, headers, result.setCookie, setHeader);
}

const safeCacheControl = (value: unknown): string => cacheControlWithCookie(value as Parameters<typeof cacheControlWithCookie>[0]);

function commitFailed(res: Intercepted, state: Interception, error: unknown): void {
  state.phase = 'replaced';
  stopReportingSent(res, state);
  discardHeld(state);
  if (state.aborted !== null) {
    res.destroy(state.aborted);
    return;
  }
  if (state.late) {
    // Nothing can replace a response whose head is out: cut it short rather than let it end as
    // if saved (unless it has ended already), and tell `onError`.
    if (!res.writableEnded) res.destroy();
    payDrain(res, state);
    if (state.options.onError) process.nextTick(reportLate, state.options.onError, error, state.req, res);
    return;
  }
  if (responseClosed(res)) {
    // Nobody left to answer: no failure response, only the 'drain' a held write promised.
    payDrain(res, state);
    return;
  }
  // A writer waiting for 'drain' goes on once the failure answer is out, so its writes are
  // dropped rather than mixed into an answer an `onError` may still be writing.
  const pay = () => payDrain(res, state);
  res.once('finish', pay);
  res.once('close', pay);
  // The failure answer replaces the app's response, ended or not: let it through.
  state.ended = false;
  // Fail closed: the app's response is replaced, and no Set-Cookie drops the client's session.
  respondWithError(error, state.req, res, state.options);
}

/** `onError` told of a failed late commit: the response is gone, so what it writes is dropped. */
function reportLate(onError: NonNullable<NodeAdapterOptions['onError']>, error: unknown, req: IncomingMessage, res: ServerResponse): void {
  try {
    onError(error, req, res);
  } catch {
    // Writing to the closed response (setHeader after the head, say) throws: it had nothing to answer.
  }
}

let errorAfterEndWarned = false;

/** Once per process, without `onError`: the handler threw after its response had ended. */
function warnErrorAfterEnd(error: unknown): void {
  if (errorAfterEndWarned) return;
  errorAfterEndWarned = true;
  process.emitWarning(
    `coatcheck: a handler failed after its response had ended, so no error answer could be sent: ${error instanceof Error ? error.message : String(error)}. ` +
      'Pass onError to withSessions to be told of each such error',
    { code: 'COATCHECK_ERROR_AFTER_END', detail: error instanceof Error ? error.stack : undefined },
  );
}

let cookieLossWarned = false;

/** Once per process: a late commit made a cookie that no response can carry any more. */
function warnCookieLost(result: CommitResult | null): void {
  if (cookieLossWarned || result === null || result.setCookie.length === 0) return;
  cookieLossWarned = true;
  process.emitWarning(
    'coatcheck: a session was saved after its response head had gone out, so its Set-Cookie was dropped. Use the session before the ' +
      'head is sent (before writeHead/write/flushHeaders), and call res.end/res.write after awaiting it: in ' +
      'res.end(`${(await getSession(req)).get(key)}`) JavaScript reads res.end before the session is used',
    { code: 'COATCHECK_COOKIE_AFTER_HEAD' },
  );
}

/** Sends what the app asked for, in order, through the methods that were there before ours. */
function replay(res: Intercepted, state: Interception): void {
  state.phase = 'passing';
  sendHeld(res, state, false);
}

/** Sends the held head and calls, keeping a final `end` back when `keepEnd` is set. */
function sendHeld(res: Intercepted, state: Interception, keepEnd: boolean): void {
  stopReportingSent(res, state);
  const queue = state.queue;
  const end = keepEnd && queue.length > 0 && queue[queue.length - 1]!.method === 'end' ? queue.pop() : undefined;
  state.replaying = true;
  try {
    if (state.head) (state.writeHead as (...a: unknown[]) => unknown).apply(res, state.head);
    for (const call of queue) (state[call.method] as (...a: unknown[]) => unknown).apply(res, call.args);
  } finally {
    state.replaying = false;
    state.head = null;
    queue.length = 0;
    if (end) queue.push(end);
  }
  // If the socket is full now, its own 'drain' follows; otherwise the owed one is sent here.
  if (!needsDrain(res)) payDrain(res, state);
}

/**
 * Nothing but coatcheck's hooks sits above this one on the response, so a call to
 * `_implicitHeader` while it holds comes from Node's own write/end/flushHeaders (or a wrapper
 * beneath the hooks) reached through a reference taken before the hook was installed. A wrapper
 * installed above the hooks (compression after an eager session) calls it and then our methods.
 */
function hooksOnTop(res: Intercepted, state: Interception): boolean {
  for (let hook: Interception | null = state; hook !== null; hook = hook.next) {
    if (res.end === hook.methods.end || res.write === hook.methods.write) return true;
  }
  return false;
}

/**
 * HTTP/2's own `end` is ending the stream (see `deferredWriteHead`): what the hook holds must go
 * out now or never. A commit that answers synchronously sends it, with the session's cookie. One
 * still pending cannot: HTTP/2's `end` has begun, so its head would end the stream and its body
 * would be refused. Rather than an empty 200 that looks complete, the stream is reset and a
 * process warning names the cause (the commit still settles; only this response is lost).
 */
function sendBeforeHttp2End(res: Intercepted, state: Interception): void {
  if (state.phase === 'holding') {
    commitBeforeHeaders(res, state);
    if ((state.phase as Interception['phase']) !== 'committing') return; // answered synchronously: sent (or replaced)
  }
  state.phase = 'replaced';
  stopReportingSent(res, state);
  discardHeld(state);
  warnHttp2EndBeforeUse();
  (res as unknown as Http2ServerResponse).stream.destroy(new Error('coatcheck: HTTP/2 response ended (through a reference to res.end taken before the session was used) while its session was being saved'));
}

let http2EndWarned = false;

function warnHttp2EndBeforeUse(): void {
  if (http2EndWarned) return;
  http2EndWarned = true;
  process.emitWarning(
    'coatcheck: an HTTP/2 response was reset: res.end was called through a reference taken before the session was first used ' +
      '(res.end(await f()) reads res.end before f() runs), and the session was still being saved. Await first, then end: ' +
      'const body = await f(); res.end(body)',
    { code: 'COATCHECK_HTTP2_END_BEFORE_USE' },
  );
}

/**
 * Node's own write/end is about to send a body, through a reference the app took before the hook
 * was installed: `res.end(`${(await getSession(req)).get('x')}`)` reads `res.end` before the
 * session is used. Its head must go out in this call, never held: each hook on the response
 * commits now when its store answers synchronously (the head then carries its cookie); otherwise
 * the head goes out without it and the commit settles late, as when headers left before the
 * session was used. A store failure found now closes the connection: the app's body follows.
 */
function sendHeadNow(res: Intercepted): void {
  const first = res[INTERCEPT] as Interception;
  let holder: Interception | null = null;
  let heldBody = false;
  for (let state: Interception | null = first; state !== null; state = state.next) {
    if (state.ended && state.phase === 'committing') {
      // A write after the app's end, which the hook still holds: Node would refuse it, but its
      // bytes cannot be stopped now. Close rather than send them after a complete response.
      res.destroy();
      return;
    }
    releaseHead(res, state);
    if (res.destroyed) return;
    if (state.head !== null) holder = state;
    heldBody ||= state.queue.some((call) => call.method === 'write');
  }
  // Node's end sized the body as its own chunk alone: held writes go first, so let the head
  // say chunked instead (Node frames the rest to match).
  if (heldBody) (res as { _contentLength?: number | null })._contentLength = null;
  // Through the methods under the hooks, every hook now letting the head pass.
  if (holder !== null) {
    const head = holder.head as unknown[];
    for (let state: Interception | null = first; state !== null; state = state.next) state.head = null;
    (holder.writeHead as (...a: unknown[]) => unknown).apply(res, head);
  } else {
    first.implicitHeader.call(res);
  }
  // Writes held earlier (a second engine's) go first, lower hooks' before upper ones'.
  for (let state: Interception | null = first; state !== null; state = state.next) sendHeld(res, state, true);
}

/** One hook lets the head through now (see `sendHeadNow`). */
function releaseHead(res: Intercepted, state: Interception): void {
  stopReportingSent(res, state);
  if (state.phase === 'committing' && !state.late) {
    state.late = true;
    addHeadersNow(res, state, null);
    return;
  }
  if (state.phase !== 'holding') return;
  state.phase = 'committing';
  let outcome: Awaitable<CommitResult | null>;
  try {
    outcome = state.session.commitNow(typeof state.head?.[0] === 'number' ? (state.head[0] as number) : res.statusCode);
  } catch (error) {
    state.late = true;
    commitFailed(res, state, error);
    return;
  }
  if (isPromiseLike(outcome)) {
    state.late = true;
    settleLater(res, state, outcome);
    addHeadersNow(res, state, null);
  } else if (addHeadersNow(res, state, outcome)) {
    state.phase = 'passing';
  }
}

/**
 * `addSessionHeaders` inside Node's own end/write: a throw there (an invalid value the app gave
 * Vary, say) closes the connection, as a failed commit found then does. False when it did.
 */
function addHeadersNow(res: Intercepted, state: Interception, result: CommitResult | null): boolean {
  try {
    addSessionHeaders(res, state, result);
    return true;
  } catch (error) {
    state.late = true;
    commitFailed(res, state, error);
    return false;
  }
}

/** Node's own `headersSent`, whatever a held response currently reports. */
const realHeadersSent = Object.getOwnPropertyDescriptor(OutgoingMessage.prototype, 'headersSent')?.get;

function headersReallySent(res: ServerResponse): boolean {
  // An HTTP/2 compatibility response keeps its head on its stream, not in `_header`.
  if (isHttp2(res)) return Boolean(Reflect.get(Object.getPrototypeOf(res) as object, 'headersSent', res));
  return realHeadersSent ? Boolean(realHeadersSent.call(res)) : res.headersSent;
}

/** A `node:http2` compatibility response (`Http2ServerResponse`): it wraps a stream. */
function isHttp2(res: ServerResponse): boolean {
  // By class, not by a `stream` property: an app may hang anything on an HTTP/1 response.
  return (res as unknown) instanceof Http2ServerResponse;
}

/** `writableNeedDrain`, which an HTTP/2 compatibility response leaves to its stream. */
function needsDrain(res: ServerResponse): boolean {
  if (!isHttp2(res)) return res.writableNeedDrain;
  return (res as unknown as Http2ServerResponse).stream.writableNeedDrain;
}

/**
 * Fastify's `onSend` commit: while it is pending the reply has been sent, as far as Fastify can
 * tell without us: `reply.sent` (and its own checks of `raw.headersSent`) read true. An async `preHandler` that
 * answers with `reply.send()` and returns then ends the request there, as it does without
 * coatcheck, instead of running the route after it; a handler that calls `reply.send()` without
 * `return reply` is not sent a second time. Returns the undo, run before the reply goes on.
 */
export function readAsSent(raw: ServerResponse): () => void {
  const defined: ('writableEnded' | 'headersSent')[] = [];
  for (const name of ['writableEnded', 'headersSent'] as const) {
    if (Object.prototype.hasOwnProperty.call(raw, name)) continue;
    Object.defineProperty(raw, name, { configurable: true, enumerable: false, get: trueWhileHeld });
    defined.push(name);
  }
  return () => {
    for (const name of defined) delete (raw as { writableEnded?: boolean; headersSent?: boolean })[name];
  };
}

/** The getter of `headersSent` / `writableEnded` while a hook holds what would have set them. */
function trueWhileHeld(): boolean {
  return true;
}

/**
 * The app has written a head or body that the hook holds: `res.headersSent` reads true, as it
 * would without the hook. Code that checks it before answering an error (Express's final handler)
 * then closes the connection rather than appending its error page to the held partial response.
 * An own property on this response only, removed once the held calls are sent or dropped.
 */
function reportHeadersSent(res: ServerResponse, state: Interception): void {
  if (state.ended) return;
  state.reportsSent = true;
  // Shared by every hook on the response (two engines): defined by whichever holds first.
  if (!Object.prototype.hasOwnProperty.call(res, 'headersSent')) {
    Object.defineProperty(res, 'headersSent', { configurable: true, enumerable: false, get: trueWhileHeld });
  }
}

/** This hook holds nothing any more: Node's own `headersSent` is back once no hook holds. */
function stopReportingSent(res: ServerResponse, state: Interception): void {
  if (state.reportsEnded) {
    state.reportsEnded = false;
    if (!anyHook(res, (hook) => hook.reportsEnded)) delete (res as { writableEnded?: boolean }).writableEnded;
  }
  if (!state.reportsSent) return;
  state.reportsSent = false;
  if (!anyHook(res, (hook) => hook.reportsSent)) delete (res as { headersSent?: boolean }).headersSent;
}

function anyHook(res: ServerResponse, test: (hook: Interception) => boolean): boolean {
  for (let hook = (res as Intercepted)[INTERCEPT] ?? null; hook !== null; hook = hook.next) {
    if (test(hook)) return true;
  }
  return false;
}

/**
 * The app has called `end` and the hook holds it for a pending commit: `res.writableEnded` reads
 * true, as it would without the hook, so code that ends a response only if nobody has (a
 * framework's fallback) leaves it alone. Removed with `stopReportingSent`; the adapter's own
 * checks run after that, on Node's value.
 */
function reportEnded(res: ServerResponse, state: Interception): void {
  state.reportsEnded = true;
  if (!Object.prototype.hasOwnProperty.call(res, 'writableEnded')) {
    Object.defineProperty(res, 'writableEnded', { configurable: true, enumerable: false, get: trueWhileHeld });
  }
}

/**
 * A held `writeHead(status[, message])`: `res.statusCode` (and `statusMessage`) read what the app
 * gave, as Node's own writeHead sets them at once. A status Node would refuse is left for the
 * replay to refuse, as before.
 */
/** Characters Node accepts in a reason phrase (its own check refuses the rest at writeHead). */
const VALID_REASON = /^[\t\x20-\x7e\x80-\xff]*$/;

function noteHeldStatus(res: ServerResponse, head: unknown[]): void {
  const status = head[0];
  if (typeof status !== 'number' || !Number.isInteger(status)) return;
  if (isHttp2(res)) {
    if (status >= 200 && status <= 599) res.statusCode = status;
    return;
  }
  if (status < 100 || status > 999) return;
  res.statusCode = status;
  // A message Node would refuse (a CR or LF in it) is left for the replay to refuse; without one,
  // Node's own phrase for the status, unless the app set one (as Node's writeHead does).
  if (typeof head[1] === 'string') {
    if (VALID_REASON.test(head[1])) res.statusMessage = head[1];
  } else if (!res.statusMessage) res.statusMessage = STATUS_CODES[status] ?? 'unknown';
}

/** The response can no longer be sent: destroyed, or its socket closed (before 'close' says so). */
function responseClosed(res: ServerResponse): boolean {
  if (isHttp2(res)) return (res as unknown as Http2ServerResponse).stream.destroyed;
  return res.destroyed || res.socket?.destroyed === true;
}

/** Drops the held calls of a response that will not be sent, telling their callbacks. */
function discardHeld(state: Interception): void {
  for (const call of state.queue) dropped(call.args);
  state.queue.length = 0;
}

/** Sends the 'drain' a held write promised, once. */
/** The bytes a write's chunk adds to the response's buffer. */
function chunkBytes(chunk: unknown, encoding: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  return chunk instanceof Uint8Array ? chunk.byteLength : 0;
}

function payDrain(res: ServerResponse, state: Interception): void {
  if (!state.owesDrain) return;
  state.owesDrain = false;
  process.nextTick(() => res.emit('drain'));
}

/**
 * The headers argument of a held writeHead call, if any, as a copy put in its place: the session
 * headers are added to it, and the app's object may be a constant shared by every response.
 * The array forms (flat `[name, value, ...]`, as in `rawHeaders`, or `[[name, value], ...]`)
 * become an object whose repeated names hold arrays: once `setHeader` has been called, Node
 * applies array pairs one by one (the last of a name would win), and not the nested form at all.
 */
function headObject(head: unknown[] | null): HeadHeaders | undefined {
  const index = head?.findIndex((arg) => typeof arg === 'object' && arg !== null) ?? -1;
  if (head === null || index === -1) return undefined;
  const original = head[index] as Record<string, unknown> | unknown[];
  const copy = Array.isArray(original) ? headersFromPairs(original) : Object.assign({}, original);
  head[index] = copy;
  return copy;
}

type HeadHeaders = Record<string, unknown>;

function headersFromPairs(pairs: unknown[]): HeadHeaders {
  const out: HeadHeaders = Object.create(null) as HeadHeaders;
  const names = new Map<string, string>(); // lower case → the first spelling seen
  const flat = !Array.isArray(pairs[0]);
  for (let i = 0; i < pairs.length; i += flat ? 2 : 1) {
    const [name, value] = flat ? [pairs[i], pairs[i + 1]] : (pairs[i] as unknown[]);
    const lower = String(name).toLowerCase();
    const key = names.get(lower);
    if (key === undefined) {
      names.set(lower, String(name));
      out[String(name)] = value;
    } else {
      const existing = out[key];
      out[key] = [...(Array.isArray(existing) ? existing : [existing]), ...(Array.isArray(value) ? value : [value])];
    }
  }
  return out;
}

/**
 * Finds `name` (any case) in writeHead's own headers and, given `update`, replaces its value.
 * False when it is not there.
 */
function updateInHead(headers: HeadHeaders | undefined, name: string, update?: (value: unknown) => unknown): boolean {
  if (!headers) return false;
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  if (key === undefined) return false;
  if (update) headers[key] = update(headers[key]);
  return true;
}

/** Appends our cookies to whatever Set-Cookie the app set, in setHeader or in writeHead's headers. */
function appendSetCookie(res: ServerResponse, headers: HeadHeaders | undefined, cookies: string[], setHeader: ServerResponse['setHeader']): void {
  const list = (existing: unknown): string[] => [...(Array.isArray(existing) ? existing : [existing]), ...cookies] as string[];
  if (updateInHead(headers, 'set-cookie', list)) return;
  const current = res.getHeader('set-cookie');
  setHeader.call(res, 'Set-Cookie', current === undefined ? cookies : list(current));
}
