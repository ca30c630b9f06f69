/**
 * The demo's shutdown on SIGTERM / SIGINT, with the entry point as a real child process: new
 * connections are refused, idle keep-alive connections closed, a request in flight may finish
 * within SHUTDOWN_GRACE (and its write is kept), one that outlasts it is cut and the process exits
 * non-zero, and a second signal cuts at once. Every wait is bounded.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { type ClientRequest, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { type DemoProcess, startDemo } from '../e2e/demo-process.js';

const SECRET = 'test-secret-0123456789-abcdefghi';

/** Rejects after `ms` with `what` in the message; clears its timer either way. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The child's exit code (null: killed by a signal) and when it exited. */
function exitOf(child: ChildProcess): Promise<{ code: number | null; at: number }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, at: Date.now() });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, at: Date.now() })));
}

/** Waits until the server has printed a line matching `pattern` (it does so when it handles the signal). */
async function printed(demo: DemoProcess, pattern: RegExp, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pattern.test(demo.output())) {
    if (Date.now() > deadline) throw new Error(`the demo did not print ${pattern} within ${ms} ms:\n${demo.output()}`);
    await sleep(20);
  }
}

/** A fresh session: its cookie and CSRF token. */
async function newSession(url: string): Promise<{ cookie: string; token: string }> {
  const res = await fetch(`${url}/api/session`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(res.status, 200);
  const [pair = ''] = (res.headers.getSetCookie()[0] ?? '').split(';');
  const body = (await res.json()) as { csrfToken: string };
  return { cookie: pair, token: body.csrfToken };
}

type Outcome = { status: number; text: string; at: number } | { error: Error; at: number };

interface Upload {
  /** Resolves when the server has read the request's headers (it answered `100 Continue`). */
  started: Promise<void>;
  /** The response, or the error that ended the request (e.g. a reset connection). */
  outcome: Promise<Outcome>;
  /** Sends the body in `pieces` parts, `intervalMs` apart, then ends the request (stops if it is cut). */
  trickle(pieces: number, intervalMs: number): Promise<void>;
}

/**
 * A PUT /api/session/data/:key whose body arrives slowly, like an upload over a slow link. The
 * `Expect: 100-continue` header makes the server say when it has the request: from then on it is
 * in flight, not an idle connection.
 */
function slowUpload(url: string, session: { cookie: string; token: string }, key: string, value: string): Upload {
  const body = Buffer.from(JSON.stringify(value));
  const req: ClientRequest = request(`${url}/api/session/data/${key}`, {
    method: 'PUT',
    agent: false,
    headers: {
      cookie: session.cookie,
      'x-csrf-token': session.token,
      'content-type': 'application/json',
      'content-length': String(body.length),
      expect: '100-continue',
    },
  });
  const outcome = new Promise<Outcome>((resolve) => {
    req.on('error', (error) => resolve({ error, at: Date.now() }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), at: Date.now() }));
      res.on('error', (error) => resolve({ error, at: Date.now() }));
    });
  });
  const started = new Promise<void>((resolve, reject) => {
    req.once('continue', () => resolve());
    void outcome.then((result) => reject(new Error(`the upload ended before it started: ${JSON.stringify(result)}`)));
  });
  started.catch(() => undefined);
  req.flushHeaders();
  return {
    started,
    outcome,
    async trickle(pieces, intervalMs) {
      const size = Math.ceil(body.length / pieces);
      for (let offset = 0; offset < body.length; offset += size) {
        if (req.destroyed) return;
        req.write(body.subarray(offset, offset + size));
        await sleep(intervalMs);
      }
      if (!req.destroyed) req.end();
    },
  };
}

/** A keep-alive connection that has had one answer and now sits idle; `closed` resolves when the server closes it. */
async function idleConnection(port: number): Promise<{ socket: Socket; closed: Promise<number> }> {
  const socket = connect(port, '127.0.0.1');
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  socket.on('error', () => undefined);
  let received = '';
  await within(
    new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString();
        if (received.endsWith('ok')) resolve();
      });
      socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    }),
    5_000,
    'the /healthz answer',
  );
  assert.match(received, /^HTTP\/1\.1 200 /);
  assert.match(received, /connection: keep-alive/i);
  return { socket, closed };
}

describe('demo shutdown (demo/server.ts, SIGTERM / SIGINT)', { timeout: 30_000 }, () => {
  let dir: string;
  const started: DemoProcess[] = [];
  const start = async (env: Record<string, string>) => {
    const demo = await startDemo({ cwd: dir, env: { SECRET, ...env } });
    started.push(demo);
    return demo;
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'coatcheck-demo-shutdown-'));
  });

  after(async () => {
    for (const demo of started) await demo.stop(0);
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets a slow request finish within SHUTDOWN_GRACE, refuses new connections, closes idle ones, keeps the write, exits 0', async () => {
    const grace = 8_000;
    const demo = await start({ SHUTDOWN_GRACE: String(grace / 1000) });
    const session = await newSession(demo.url);
    const idle = await idleConnection(demo.port);
    const value = 'x'.repeat(2_000);
    const upload = slowUpload(demo.url, session, 'upload', value);
    await within(upload.started, 5_000, 'the server reading the upload\'s headers');
    const exit = exitOf(demo.child);

    const signalled = Date.now();
    demo.child.kill('SIGTERM');
    await printed(demo, /SIGTERM/);
    // The body keeps coming for ~3 s after the signal: longer than the old fixed 2 s cut-off.
    const sending = upload.trickle(6, 500);

    const idleClosedAt = await within(idle.closed, 2_000, 'the server closing an idle keep-alive connection');
    assert.ok(idleClosedAt - signalled < 2_000);
    await assert.rejects(fetch(`${demo.url}/healthz`, { signal: AbortSignal.timeout(2_000) }), 'a new connection after SIGTERM is refused');

    const outcome = await within(upload.outcome, grace + 2_000, 'the slow upload\'s answer');
    await sending;
    assert.ok('status' in outcome, `the slow upload was cut: ${'error' in outcome ? outcome.error.message : ''}\n${demo.output()}`);
    assert.equal(outcome.status, 200, outcome.text);
    assert.equal((JSON.parse(outcome.text) as { data: { upload?: string } }).data.upload, value);
    assert.ok(outcome.at - signalled >= 2_500, 'the upload really outlasted the old 2 s cut-off');
    assert.ok(outcome.at - signalled < grace, 'answered within the grace period');

    const { code, at } = await within(exit, grace + 5_000, 'the demo exiting');
    assert.equal(code, 0, demo.output());
    assert.ok(at - outcome.at < 3_000, `the demo exits soon after its last request (${at - outcome.at} ms)\n${demo.output()}`);

    // The write reached the store, and the store was closed cleanly: a restart still has it.
    const again = await start({});
    const res = await fetch(`${again.url}/api/session`, { headers: { cookie: session.cookie }, signal: AbortSignal.timeout(5_000) });
    assert.equal(((await res.json()) as { data: { upload?: string } }).data.upload, value);
    assert.equal(await again.stop(), 0, again.output());
  });

  it('cuts a request that outlasts SHUTDOWN_GRACE, still closes the store, and exits 1', async () => {
    const demo = await start({ SHUTDOWN_GRACE: '1', STORE: 'memory:' });
    const upload = slowUpload(demo.url, await newSession(demo.url), 'upload', 'y'.repeat(2_000));
    await within(upload.started, 5_000, 'the server reading the upload\'s headers');
    const exit = exitOf(demo.child);

    const signalled = Date.now();
    demo.child.kill('SIGTERM');
    await printed(demo, /SIGTERM/);
    // The body would take ~5 s: far beyond the 1 s grace period.
    const sending = upload.trickle(10, 500);

    const outcome = await within(upload.outcome, 5_000, 'the cut upload ending');
    assert.ok('error' in outcome, `the upload outlasting the grace period was answered: ${JSON.stringify(outcome)}`);
    assert.ok(outcome.at - signalled >= 800, `cut after the grace period, not before (${outcome.at - signalled} ms)`);
    const { code, at } = await within(exit, 5_000, 'the demo exiting');
    await sending;
    assert.equal(code, 1, `a forced shutdown exits 1 (null: it had to be killed):\n${demo.output()}`);
    assert.ok(at - signalled < 4_000, `exited ${at - signalled} ms after SIGTERM`);
    assert.match(demo.output(), /session store closed/, 'the store is closed on the forced path too');
  });

  it('a second signal during the shutdown cuts at once and exits 1', async () => {
    const demo = await start({ SHUTDOWN_GRACE: '10', STORE: 'memory:' });
    const upload = slowUpload(demo.url, await newSession(demo.url), 'upload', 'z'.repeat(2_000));
    await within(upload.started, 5_000, 'the server reading the upload\'s headers');
    const exit = exitOf(demo.child);

    demo.child.kill('SIGTERM');
    await printed(demo, /SIGTERM/);
    const sending = upload.trickle(10, 300);
    await sleep(300);
    const again = Date.now();
    demo.child.kill('SIGINT');

    const outcome = await within(upload.outcome, 5_000, 'the cut upload ending');
    assert.ok('error' in outcome, `the upload was answered: ${JSON.stringify(outcome)}`);
    const { code, at } = await within(exit, 5_000, 'the demo exiting');
    await sending;
    assert.equal(code, 1, `a forced shutdown exits 1 (null: it had to be killed):\n${demo.output()}`);
    assert.ok(at - again < 2_000, `exited ${at - again} ms after the second signal`);
    assert.match(demo.output(), /session store closed/);
  });
});
