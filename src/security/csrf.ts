/**
 * Request-level CSRF protection for unsafe methods: the browser's own signals first (Origin,
 * Sec-Fetch-Site), then a token bound to the session (the static token from `csrfToken()` or a
 * one-time token from `getSecurityKey()`), from a header or a form field.
 * @module coatcheck
 */
import type { Session } from '../core/session.js';
import type { SessionData } from '../types.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

export interface CsrfRequest {
  method: string;
  /** The full request URL (its origin is the expected Origin). */
  url: string;
  /** Header lookup, case-insensitive (a Fetch `Headers`, or a small wrapper for node). */
  header(name: string): string | null | undefined;
  /** The token from a form field, when the app parsed one (e.g. `csrf_token`). */
  formToken?: string | null | undefined;
}

export interface CsrfOptions {
  /** Header carrying the token. Default `x-csrf-token`. */
  headerName?: string | undefined;
  /** Other origins allowed to send unsafe requests (e.g. `https://admin.example.com`). */
  allowedOrigins?: readonly string[] | undefined;
  /** Also accept one-time tokens (spent on use). Default true. */
  oneTime?: boolean | undefined;
}

export type CsrfResult = { ok: true } | { ok: false; status: 403; reason: string };

const deny = (reason: string): CsrfResult => ({ ok: false, status: 403, reason });

/**
 * Checks an unsafe request. Safe methods always pass. Never throws on client input.
 * @example
 * <!-- snippet: with coatcheck, fetch, session, handler -->
 * ```ts
 * const check = await verifyCsrf(session, { method: request.method, url: request.url, header: (n) => request.headers.get(n) });
 * if (!check.ok) return new Response(check.reason, { status: check.status });
 * ```
 */
export async function verifyCsrf<T extends SessionData>(session: Session<T>, request: CsrfRequest, options: CsrfOptions = {}): Promise<CsrfResult> {
  if (SAFE_METHODS.has(request.method.toUpperCase())) return { ok: true };
  let expected: string;
  try {
    expected = new URL(request.url).origin;
  } catch {
    return deny('Forbidden: request URL is not absolute');
  }
  const allowed = new Set([expected, ...(options.allowedOrigins ?? [])]);
  const origin = request.header('origin');
  if (origin !== null && origin !== undefined && !allowed.has(origin)) return deny('Forbidden: cross-origin request (Origin)');
  const site = request.header('sec-fetch-site');
  if (site === 'cross-site' && (origin === null || origin === undefined || origin === expected)) {
    return deny('Forbidden: cross-site request (Sec-Fetch-Site)');
  }
  const token = request.header(options.headerName ?? 'x-csrf-token') ?? request.formToken ?? null;
  if (!token) return deny('Forbidden: missing CSRF token');
  await session.load();
  if (session.validateStaticSecurityKey(token)) return { ok: true };
  if (options.oneTime !== false && (await session.validateSecurityKey(token)) !== false) return { ok: true };
  return deny('Forbidden: invalid CSRF token');
}
