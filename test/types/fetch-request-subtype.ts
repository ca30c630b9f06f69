/**
 * Type test (checked by `npm run typecheck`, never run): `withSessions` from coatcheck/fetch takes
 * a handler typed with a Request subtype, as Next.js route handlers are (`(req: NextRequest) => …`),
 * and the wrapper it returns takes the same type.
 */
import { getSession, withSessions } from '../../src/adapters/fetch.js';
import { createSessions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';

const sessions = createSessions({ store: memoryStore() });

/** A stand-in for Next's NextRequest: a Request with more on it. */
declare class NextRequest extends Request {
  readonly nextUrl: URL;
  readonly cookies: { get(name: string): { value: string } | undefined };
}

export const GET = withSessions(sessions, async (request: NextRequest, context: { params: Promise<{ id: string }> }) => {
  const session = await getSession(request);
  session.set('path', request.nextUrl.pathname);
  return Response.json({ id: (await context.params).id, theme: request.cookies.get('theme')?.value ?? null });
});

// The wrapper keeps the handler's request type…
export const typed: (request: NextRequest, context: { params: Promise<{ id: string }> }) => Promise<Response> = GET;
// …so a plain Request is refused where the handler needs a NextRequest.
// @ts-expect-error a Request is not a NextRequest
void GET(new Request('http://localhost/'), { params: Promise.resolve({ id: '1' }) });

// Options see the same request type.
export const withOptions = withSessions(sessions, async (request: NextRequest) => new Response(request.nextUrl.pathname), {
  getClientIp: (request) => request.headers.get('x-real-ip') ?? request.nextUrl.hostname,
  onError: (_error, request) => new Response(request.nextUrl.pathname, { status: 503 }),
});

// A handler on plain Request still infers as before.
export const plain: (request: Request) => Promise<Response> = withSessions(sessions, async (request) => new Response(request.url));
