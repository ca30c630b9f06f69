/**
 * One "app process" for the two-process tiered-store test: a node:http server whose sessions use
 * Redis as the cache tier and PostgreSQL as the durable tier. Started as a child process.
 * Env: PORT_FILE (where to write the port), PREFIX (Redis), TABLE (PostgreSQL), REDIS_URL, POSTGRES_URL.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getSession, withSessions } from '../../src/adapters/node.js';
import { createSessions } from '../../src/index.js';
import { postgresStore } from '../../src/stores/postgres.js';
import { redisStore } from '../../src/stores/redis.js';
import { tieredStore } from '../../src/stores/tiered.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

const store = tieredStore({
  cache: redisStore({ url: env('REDIS_URL'), prefix: env('PREFIX') }),
  durable: postgresStore({ connectionString: env('POSTGRES_URL'), table: env('TABLE') }),
});
const sessions = createSessions({ store, idleTimeout: Number(process.env.IDLE_TIMEOUT ?? 3600) });

const server = createServer(
  withSessions(sessions, async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const reply = (body: unknown) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/kill') {
      const user = url.searchParams.get('user');
      reply({ killed: await (user === null ? sessions.killSessionsByUser() : sessions.killSessionsByUser(user)) });
      return;
    }
    const session = await getSession(req);
    if (url.pathname === '/login') await session.login(url.searchParams.get('user') ?? 'nobody');
    if (url.pathname === '/logout') await session.logout();
    if (url.pathname === '/set') session.set(url.searchParams.get('key') ?? 'k', url.searchParams.get('value') ?? '');
    reply({ pid: process.pid, user: session.userId, data: session.toJSON() });
  }),
);
server.listen(0, '127.0.0.1', () => writeFileSync(env('PORT_FILE'), String((server.address() as AddressInfo).port)));
process.on('SIGTERM', () => {
  server.close();
  void sessions.close().finally(() => process.exit(0));
});
