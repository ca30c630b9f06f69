/**
 * The JSON API under /api: the same things as the pages, for scripts. Bodies are JSON; unsafe
 * methods need the session's CSRF token in `x-csrf-token` (get it from GET /api/session).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getSession } from '../src/adapters/node.js';
import { verifyCsrf } from '../src/index.js';
import * as act from './actions.js';
import type { DemoSession, DemoSessions } from './actions.js';
import { deviceJson } from './devices.js';
import { csrfRequest, HttpError, parseJson, readBody, sendJson } from './http.js';

export interface ApiOptions {
  sessions: DemoSessions;
  trustProxy: boolean;
  bodyLimit: number;
}

interface Call {
  session: DemoSession;
  /** Decoded path parameter (`:key`, `:handle`). */
  param: string;
  /** The parsed JSON body; only read by routes that need one. */
  body(): Promise<unknown>;
  /** HEAD runs the GET route, but its answer has no body, so it must not consume flashes. */
  head: boolean;
}

type Route = (call: Call) => Promise<[number, unknown]> | [number, unknown];

const FLASH_CATEGORIES = new Set(['info', 'success', 'error']);

/** The session as GET /api/session shows it; flashes are consumed, so they show once. */
function sessionView(session: DemoSession, withFlashes: boolean) {
  const csrfToken = session.csrfToken(); // first, so the session (and its expiry) exists
  const flashes = withFlashes ? session.consumeFlashes() : [];
  return {
    user: session.userId,
    data: session.toJSON(),
    csrfToken,
    expiresAt: session.getExpiryDate().toISOString() as string | null,
    ...(flashes.length > 0 && { flashes }),
  };
}

function field(body: unknown, name: string): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, `expected a JSON object with "${name}"`);
  return (body as Record<string, unknown>)[name];
}

function routes(options: ApiOptions): { pattern: RegExp; methods: Record<string, Route> }[] {
  const { sessions } = options;
  return [
    { pattern: /^\/api\/session$/, methods: { GET: ({ session, head }) => [200, sessionView(session, !head)] } },
    {
      pattern: /^\/api\/session\/data\/([^/]+)$/,
      methods: {
        async PUT({ session, param, body }) {
          act.setDataKey(session, param, await body(), sessions.options.maxDataSize);
          return [200, { data: session.toJSON() }];
        },
        DELETE({ session, param }) {
          if (!session.has(param)) throw new HttpError(404, `the session has no key ${JSON.stringify(param)}`);
          session.delete(param);
          return [200, { data: session.toJSON() }];
        },
      },
    },
    { pattern: /^\/api\/counter$/, methods: { POST: ({ session }) => [200, { count: act.incrementCounter(session) }] } },
    {
      pattern: /^\/api\/login$/,
      methods: {
        async POST({ session, body }) {
          const user = act.checkUserName(field(await body(), 'user'));
          await session.login(user);
          return [200, sessionView(session, false)];
        },
      },
    },
    {
      pattern: /^\/api\/logout$/,
      methods: {
        async POST({ session }) {
          await session.logout();
          return [200, sessionView(session, false)];
        },
      },
    },
    {
      pattern: /^\/api\/sessions$/,
      methods: { GET: async ({ session }) => [200, (await act.listDevices(sessions, session)).map(deviceJson)] },
    },
    {
      pattern: /^\/api\/sessions\/revoke-others$/,
      methods: { POST: async ({ session }) => [200, { revoked: await act.revokeOtherDevices(sessions, session) }] },
    },
    {
      pattern: /^\/api\/sessions\/([^/]+)$/,
      methods: {
        async DELETE({ session, param }) {
          const outcome = await act.revokeDevice(sessions, session, param);
          return [200, { revoked: param, current: outcome === 'current' }];
        },
      },
    },
    {
      pattern: /^\/api\/flash$/,
      methods: {
        async POST({ session, body }) {
          const json = await body();
          const message = act.checkFlash(field(json, 'message'));
          const category = field(json, 'category') ?? 'info';
          if (typeof category !== 'string' || !FLASH_CATEGORIES.has(category)) throw new HttpError(400, '"category" must be info, success or error');
          session.flash(message, category);
          return [200, { queued: true }];
        },
      },
    },
  ];
}

function decodeParam(raw: string | undefined): string {
  if (raw === undefined) return '';
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, 'malformed percent-encoding in the path');
  }
}

export function apiRoutes(options: ApiOptions) {
  const table = routes(options);

  /** Answers an /api request (always: unknown paths get a JSON 404). */
  return async function handleApi(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    try {
      const match = table.map((route) => ({ route, found: route.pattern.exec(path) })).find((m) => m.found !== null);
      if (!match) throw new HttpError(404, `no such endpoint: ${path}`);
      const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
      const route = match.route.methods[method];
      if (!route) throw new HttpError(405, `use ${Object.keys(match.route.methods).join(' or ')} here`, { Allow: Object.keys(match.route.methods).join(', ') });
      const param = decodeParam(match.found?.[1]);

      const session = await getSession<act.DemoData>(req);
      const check = await verifyCsrf(session, csrfRequest(req, options.trustProxy), { oneTime: false });
      if (!check.ok) throw new HttpError(check.status, `${check.reason}: send the token from GET /api/session in the x-csrf-token header`);

      const body = async () => parseJson(await readBody(req, options.bodyLimit));
      const [status, result] = await route({ session, param, body, head: req.method === 'HEAD' });
      sendJson(res, status, result);
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      sendJson(res, error.status, { error: error.message }, error.headers);
    }
  };
}
