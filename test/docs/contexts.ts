/**
 * What a fragment may take for granted. A block preceded by `<!-- snippet: with a, b -->` gets
 * the declarations of contexts `a` and `b`: each declaration is added only when the block uses
 * that name and does not declare or import it itself (like an enclosing scope), after the block's
 * code so that line numbers stay the same. Blocks without a marker get nothing: they must compile
 * as they stand.
 */

export interface Context {
  /** What the context stands for, printed when a block that uses it fails. */
  about: string;
  /** Name → a declaration that binds it (an import, or an ambient `declare`). */
  names?: Record<string, string>;
  /** The block is the body of an async request handler (it may `return`). */
  handlerBody?: boolean;
}

const importFrom = (module: string, ...names: string[]): Record<string, string> =>
  Object.fromEntries(names.map((name) => [name, `import { ${name} } from '${module}';`]));

export const CONTEXTS: Record<string, Context> = {
  coatcheck: {
    about: "values exported by 'coatcheck', imported in an earlier block of the page",
    names: importFrom('coatcheck', 'createSessions', 'verifyCsrf', 'currentSession', 'useSession', 'GUEST_USER'),
  },
  stores: {
    about: 'the store factories, imported in an earlier block of the page',
    names: {
      ...importFrom('coatcheck/stores/memory', 'memoryStore'),
      ...importFrom('coatcheck/stores/sqlite', 'sqliteStore'),
      ...importFrom('coatcheck/stores/postgres', 'postgresStore'),
      ...importFrom('coatcheck/stores/redis', 'redisStore'),
      ...importFrom('coatcheck/stores/tiered', 'tieredStore'),
      ...importFrom('coatcheck/stores/cookie', 'cookieStore'),
      ...importFrom('coatcheck/stores/connect', 'connectStore'),
      ...importFrom('coatcheck/stores/from-url', 'storeFromUrl'),
    },
  },
  sessions: {
    about: "the app's engine: `const sessions = createSessions({ ... })`",
    names: { sessions: "declare const sessions: import('coatcheck').Sessions;" },
  },
  session: {
    about: 'the current request\'s session, loaded: `const session = await getSession(req)`',
    names: { session: "declare const session: import('coatcheck').Session;" },
  },
  node: {
    about: 'a node:http request handler using coatcheck/node: `req`, `res`',
    names: {
      ...importFrom('coatcheck/node', 'withSessions', 'getSession', 'sessionHandle', 'csrfRequest'),
      req: "declare const req: import('node:http').IncomingMessage;",
      res: "declare const res: import('node:http').ServerResponse;",
    },
  },
  fetch: {
    about: 'a Fetch handler using coatcheck/fetch: `request`',
    names: {
      ...importFrom('coatcheck/fetch', 'withSessions', 'getSession', 'sessionHandle'),
      request: 'declare const request: Request;',
    },
  },
  express: {
    about: 'an Express app using coatcheck/express: `app`, and in a handler `req`, `res`, `next`',
    names: {
      ...importFrom('coatcheck/express', 'expressSessions', 'getSession', 'sessionHandle'),
      app: "declare const app: import('express').Express;",
      req: "declare const req: import('express').Request;",
      res: "declare const res: import('express').Response;",
      next: "declare const next: import('express').NextFunction;",
    },
  },
  fastify: {
    about: 'a Fastify app using coatcheck/fastify: `app`, and in a handler `request`, `reply`',
    names: {
      ...importFrom('coatcheck/fastify', 'fastifySessions', 'getSession', 'csrfRequest'),
      app: "declare const app: import('fastify').FastifyInstance;",
      request: "declare const request: import('fastify').FastifyRequest;",
      reply: "declare const reply: import('fastify').FastifyReply;",
    },
  },
  koa: {
    about: 'a Koa app using coatcheck/koa: `app`, `ctx`, and `router`, a @koa/router Router (not installed here: a stand-in with its `get`/`post`)',
    names: {
      ...importFrom('coatcheck/koa', 'koaSessions', 'getSession', 'csrfRequest'),
      app: "declare const app: import('koa');",
      ctx: "declare const ctx: import('koa').Context;",
      router: "declare const router: { [M in 'get' | 'post' | 'put' | 'delete']: (path: string, ...middleware: import('koa').Middleware[]) => unknown };",
    },
  },
  hono: {
    about: 'a Hono app using coatcheck/hono: `app`, and in a handler `c`',
    names: {
      ...importFrom('coatcheck/hono', 'honoSessions', 'getSession'),
      app: "declare const app: import('hono').Hono;",
      c: "declare const c: import('hono').Context;",
    },
  },
  crypto: {
    about: 'coatcheck/crypto, and `ring`, a key ring from `createKeyRing([process.env.SESSION_SECRET!])`',
    names: {
      ...importFrom('coatcheck/crypto', 'createKeyRing', 'deriveKey', 'seal', 'unseal', 'constantTimeEqual', 'randomToken'),
      ring: "declare const ring: import('coatcheck/crypto').KeyRing;",
    },
  },
  'connect-redis': {
    about: "express-session's Redis store: `RedisStore` from connect-redis and `client`, a connected node-redis client",
    names: {
      ...importFrom('connect-redis', 'RedisStore'),
      client: "declare const client: import('redis').RedisClientType;",
    },
  },
  'app-values': {
    about: "values the app has and the example does not show where from (user ids, a logger, a form, a config string, the app's own store)",
    names: {
      userId: 'declare const userId: string;',
      user: 'declare const user: { id: string };',
      handle: 'declare const handle: string;',
      sessionHandle: 'declare const sessionHandle: string;',
      submitted: 'declare const submitted: string;',
      cookieValue: 'declare const cookieValue: string;',
      url: 'declare const url: string;',
      connectionString: 'declare const connectionString: string;',
      form: 'declare const form: FormData;',
      log: 'declare function log(...values: unknown[]): void;',
      logger: 'declare const logger: { warn(fields: object, message: string): void };',
      reject: 'declare function reject(): never;',
      myStore: "declare function myStore(options?: object): import('coatcheck').Store;",
    },
  },
  handler: {
    about: 'the code is the body of an async request handler (it may `return` a response)',
    handlerBody: true,
  },
};
