/**
 * Soak: a bounded run of many requests over many sessions (default 200 000 per store, memory and
 * SQLite) against a real server in its own process. Each of 32 connections
 * loops through a session's life: sign in, three writes, a read, sign out (the record is deleted),
 * so tens of thousands of sessions are created and destroyed. The server's heap and RSS are taken
 * after a full GC after each fifth of the run: once warm, they must stay flat (a generous bound,
 * the growth is reported), every request must succeed, and the signed-out sessions must be gone.
 *
 * COATCHECK_SOAK_REQUESTS changes the number per store.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import autocannon from 'autocannon';

const PER_STORE = Number(process.env.COATCHECK_SOAK_REQUESTS ?? 200_000);
const CHUNKS = 5;
const CONNECTIONS = 32;
/** After the first fifth (warm-up: JIT, pools, SQLite cache), the heap may grow at most this much. */
const HEAP_BOUND = 24 * 2 ** 20;
const RSS_BOUND = 128 * 2 ** 20;
const SERVER = fileURLToPath(new URL('../helpers/soak-server.ts', import.meta.url));

interface Usage {
  heapUsed: number;
  rss: number;
  stored: number;
}

async function startServer(kind: string, dir: string): Promise<{ port: number; child: ChildProcess; usage(): Promise<Usage>; stop(): Promise<void> }> {
  const child = fork(SERVER, [kind, dir], { execArgv: ['--import', 'tsx', '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('soak server did not start')), 30_000);
    child.once('exit', (code) => reject(new Error(`soak server exited with ${code}`)));
    child.on('message', (message: { type?: string; port?: number }) => {
      if (message.type !== 'ready') return;
      clearTimeout(timer);
      resolve(message.port as number);
    });
  });
  return {
    port,
    child,
    usage: () =>
      new Promise<Usage>((resolve) => {
        const listener = (message: Usage & { type?: string }) => {
          if (message.type !== 'usage') return;
          child.off('message', listener);
          resolve(message);
        };
        child.on('message', listener);
        child.send({ type: 'usage' });
      }),
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** One session's life, repeated by every connection: autocannon resets the context each loop. */
function lifecycle(): autocannon.Request[] {
  const withCookie = (method: string, path: string): autocannon.Request => ({
    method,
    path,
    setupRequest: (request, context) => ({ ...request, headers: { ...request.headers, cookie: String(context.cookie ?? '') } }),
  });
  return [
    {
      method: 'POST',
      path: '/login',
      onResponse: (_status, _body, context, headers) => {
        const raw = headers['set-cookie'] ?? headers['Set-Cookie'];
        const line = Array.isArray(raw) ? raw[0] : raw;
        context.cookie = line?.split(';')[0] ?? '';
      },
    },
    withCookie('GET', '/write'),
    withCookie('GET', '/write'),
    withCookie('GET', '/write'),
    withCookie('GET', '/read'),
    withCookie('POST', '/logout'),
  ];
}

const MiB = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

describe('reliability: soak (bounded), memory and SQLite stores', () => {
  for (const kind of ['memory', 'sqlite']) {
    it(`${kind} store: ${PER_STORE} requests over many sessions, no failure, heap and RSS flat after warm-up`, async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'coatcheck-soak-'));
      const server = await startServer(kind, dir);
      const started = Date.now();
      try {
        // A whole number of session lives per connection, so every connection ends signed out.
        const cycle = CONNECTIONS * lifecycle().length;
        const perChunk = Math.max(cycle, Math.floor(PER_STORE / CHUNKS / cycle) * cycle);
        const usages: Usage[] = [await server.usage()];
        let ok = 0;
        for (let chunk = 0; chunk < CHUNKS; chunk++) {
          const result = await autocannon({
            url: `http://127.0.0.1:${server.port}`,
            connections: CONNECTIONS,
            amount: perChunk,
            timeout: 10,
            requests: lifecycle(),
          });
          assert.equal(result.non2xx, 0, `chunk ${chunk}: ${result.non2xx} non-2xx answers`);
          assert.equal(result.errors + result.timeouts, 0, `chunk ${chunk}: ${result.errors} errors, ${result.timeouts} timeouts`);
          ok += result['2xx'];
          usages.push(await server.usage());
        }
        const seconds = (Date.now() - started) / 1000;
        const warm = usages[1] as Usage;
        const last = usages[usages.length - 1] as Usage;
        const heapGrowth = last.heapUsed - warm.heapUsed;
        const rssGrowth = last.rss - warm.rss;
        t.diagnostic(
          `${ok} requests (${Math.round(ok / 6)} sessions created and ended) in ${seconds.toFixed(1)} s; ` +
            `heap after GC per fifth: ${usages.map((u) => MiB(u.heapUsed)).join(' → ')} MiB (growth after warm-up ${MiB(heapGrowth)} MiB); ` +
            `RSS ${usages.map((u) => MiB(u.rss)).join(' → ')} MiB (growth ${MiB(rssGrowth)} MiB); sessions left ${last.stored}`,
        );
        assert.ok(ok >= perChunk * CHUNKS, `all ${perChunk * CHUNKS} requests answered (got ${ok})`);
        assert.ok(heapGrowth < HEAP_BOUND, `heap grew ${MiB(heapGrowth)} MiB after warm-up`);
        assert.ok(rssGrowth < RSS_BOUND, `RSS grew ${MiB(rssGrowth)} MiB after warm-up`);
        // Every connection ends each chunk signed out, so no session may be left behind.
        assert.equal(last.stored, 0, `${last.stored} sessions left; signed-out sessions must be deleted`);
      } finally {
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
