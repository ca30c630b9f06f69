/**
 * Compiled by `npm run typecheck` (test/types/tsconfig.json); never run. Framework objects of
 * every shape the frameworks allow reach the adapters' helpers: a Koa app with its own context
 * type, a Fastify server on HTTP/2, Express's own request and response in `onError`.
 */
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import { createSessions } from '../../src/index.js';
import { expressSessions } from '../../src/adapters/express.js';
import { csrfRequest as fastifyCsrfRequest, fastifySessions, getSession as fastifyGetSession } from '../../src/adapters/fastify.js';
import { csrfRequest as koaCsrfRequest, getSession as koaGetSession, koaSessions } from '../../src/adapters/koa.js';
import { memoryStore } from '../../src/stores/memory.js';

const sessions = createSessions({ store: memoryStore() });

// Koa with a custom context type: importing coatcheck/koa must not break code that never uses the session.
declare function takesContext(ctx: Koa.Context): void;
const koa = new Koa<Koa.DefaultState, { user: string }>();
koa.use(koaSessions(sessions));
koa.use(async (ctx) => {
  takesContext(ctx);
  const session = await koaGetSession(ctx);
  void koaCsrfRequest(ctx);
  void ctx.session.userId;
  ctx.body = `${ctx.user} ${session.userId ?? ''}`;
});

// Fastify on HTTP/2: the helpers take its requests as they take HTTP/1 ones.
const h2 = Fastify({ http2: true });
void h2.register(fastifySessions, { sessions });
h2.get('/', async (request) => {
  void fastifyCsrfRequest(request);
  return (await fastifyGetSession(request)).userId;
});

// Express: onError annotated with Express's own types gets Express's methods.
const app = express();
app.use(
  expressSessions(sessions, {
    onError: (_error, req: express.Request, res: express.Response) => {
      res.status(503).type('text').send(`down: ${req.originalUrl}`);
    },
  }),
);

// killSessionsByUser: no argument ends everyone; a value that may be undefined does not type-check.
declare const maybeUser: string | undefined;
void sessions.killSessionsByUser();
void sessions.killSessionsByUser('alice');
// @ts-expect-error an unset variable must not read as "everyone"
void sessions.killSessionsByUser(maybeUser);
