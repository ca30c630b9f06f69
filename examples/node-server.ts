/**
 * A small real server on the embedded default store (SQLite, ./data/sessions.db): a visit counter,
 * sign in / sign out with a persistent `language` field, and the session's expiry. Sessions survive
 * a restart. Run: `node --import tsx examples/node-server.ts`, then open http://localhost:3000.
 *
 * It runs from the repository, so it imports the sources. In an app, import the package instead:
 *   import { createSessions } from 'coatcheck';
 *   import { getSession, withSessions } from 'coatcheck/node';
 *   import { sqliteStore } from 'coatcheck/stores/sqlite';
 */
import { createServer, type ServerResponse } from 'node:http';
import { createSessions } from '../src/index.js';
import { getSession, withSessions } from '../src/adapters/node.js';
import { sqliteStore } from '../src/stores/sqlite.js';

interface AppData {
  visits: number;
  language: string;
}

const sessions = createSessions<AppData>({
  store: sqliteStore({ path: process.env.SESSIONS_DB ?? './data/sessions.db' }),
  idleTimeout: 30 * 60,
});

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res: ServerResponse, body: string): void {
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.end(`<!doctype html><meta charset="utf-8"><title>coatcheck example</title>
<style>body{font:16px system-ui;max-width:36rem;margin:3rem auto}form{display:inline}</style>${body}`);
}

async function readForm(req: import('node:http').IncomingMessage): Promise<URLSearchParams> {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 10_000) break;
  }
  return new URLSearchParams(text);
}

const server = createServer(
  withSessions(sessions, async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/healthz') {
      res.end('ok'); // never touches the session: no store call, no cookie
      return;
    }
    const session = await getSession<AppData>(req);
    if (req.method === 'POST') {
      const form = await readForm(req);
      if (url.pathname === '/login' && form.get('user')) await session.login(form.get('user')!.slice(0, 64));
      if (url.pathname === '/logout') await session.logout();
      if (url.pathname === '/language') session.set('language', form.get('language') === 'de' ? 'de' : 'en');
      res.writeHead(303, { Location: '/' }).end();
      return;
    }
    session.set('visits', session.get('visits', 0) + 1);
    const user = session.userId;
    page(
      res,
      `<h1>${session.get('language') === 'de' ? 'Hallo' : 'Hello'}${user ? `, ${escape(user)}` : ''}</h1>
<p>Visits in this session: <b>${session.get('visits')}</b>. Session expires ${session.getExpiryDate().toISOString()}.</p>
${
  user
    ? '<form method="post" action="/logout"><button>Sign out</button></form>'
    : '<form method="post" action="/login"><input name="user" placeholder="any name" required> <button>Sign in</button></form>'
}
<form method="post" action="/language"><button name="language" value="de">Deutsch</button> <button name="language" value="en">English</button></form>
<p><small>Signing in or out starts a new session (new id) and keeps only <code>language</code>.</small></p>`,
    );
  }),
);

const port = Number(process.env.PORT ?? 3000);
server.listen(port, () => console.log(`coatcheck example on http://localhost:${port} (sessions in SQLite)`));
