/**
 * The soak test's server, in its own process (started with --expose-gc) so its heap holds nothing
 * but the app and the load generator gets the other core. `node --import tsx --expose-gc
 * soak-server.ts <memory|sqlite> [dir]`; IPC: → `{ type: 'ready', port }`; ← `{ type: 'usage' }` →
 * heap and RSS after a full GC plus the number of stored sessions; ← `{ type: 'stop' }`.
 *
 * Routes: `POST /login` (new signed-in session), `GET /write` (n += 1), `GET /read`, `POST /logout`
 * (the session is reset to an empty one, so its record is deleted).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { getSession, withSessions } from '../../src/adapters/node.js';
import { createSessions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import { sqliteStore } from '../../src/stores/sqlite.js';

const kind = process.argv[2];
const dir = process.argv[3] ?? '.';
const gc = (globalThis as { gc?: () => void }).gc;
if (!process.send || !gc || (kind !== 'memory' && kind !== 'sqlite')) {
  console.error('usage: node --import tsx --expose-gc soak-server.ts <memory|sqlite> [dir], with an IPC channel');
  process.exit(2);
}

const path = join(dir, 'soak.db');
const memory = kind === 'memory' ? memoryStore() : null;
const store = memory ?? sqliteStore({ path });
const counter = kind === 'sqlite' ? new Database(path, { readonly: true }) : null;
const sessions = createSessions({ store });
let users = 0;

const server = createServer(
  withSessions(sessions, async (req, res) => {
    const session = await getSession(req);
    const url = req.url ?? '/';
    if (url === '/login') {
      await session.login(`soak-${users++ % 1_000}`);
      session.set('n', 0);
    } else if (url === '/logout') {
      await session.logout();
    } else if (session.userId === null) {
      res.statusCode = 401;
      res.end('{"error":"not signed in"}');
      return;
    } else if (url === '/write') {
      session.set('n', (session.get('n', 0) as number) + 1);
      session.set('seen', [Date.now(), url]);
    }
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ user: session.userId, n: session.get('n', null) }));
  }),
);
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port }));

function storedSessions(): number {
  if (memory) return memory.size;
  return (counter?.prepare('SELECT count(*) AS n FROM coatcheck_sessions').get() as { n: number }).n;
}

process.on('message', (message: { type?: string }) => {
  if (message?.type === 'usage') {
    gc?.();
    gc?.();
    const { heapUsed, rss } = process.memoryUsage();
    process.send?.({ type: 'usage', heapUsed, rss, stored: storedSessions() });
  }
  if (message?.type === 'stop') {
    server.closeAllConnections();
    server.close(() => {
      counter?.close();
      void sessions.close().then(() => process.exit(0));
    });
  }
});
process.on('disconnect', () => process.exit(0));
