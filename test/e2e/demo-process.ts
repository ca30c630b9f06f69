/**
 * Runs `demo/server.ts` as a child process, the way `npm start` does, in a directory of the test's
 * choosing (so ./data — the SQLite file and the development secret — is a temp dir). Every wait
 * is bounded and every child is killed, even when a test fails half-way.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SERVER = fileURLToPath(new URL('../../demo/server.ts', import.meta.url));
/** tsx resolved from this repository, so the child can run from any working directory. */
const TSX = import.meta.resolve('tsx');

/** Our configuration variables are never inherited from the developer's shell. */
const DEMO_ENV = ['PORT', 'HOST', 'STORE', 'SECRET', 'IDLE_TIMEOUT', 'ABSOLUTE_TIMEOUT', 'COOKIE_SECURE', 'TRUST_PROXY', 'SHUTDOWN_GRACE', 'NODE_TEST_CONTEXT', 'NODE_OPTIONS'];

export interface DemoProcess {
  /** e.g. http://127.0.0.1:40123 */
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything the server printed so far (stdout and stderr). */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null if killed). */
  stop(graceMs?: number): Promise<number | null>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Runs the server to completion (for configuration errors); bounded by `timeoutMs`. */
export async function runDemoToExit(options: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<{ code: number | null; output: string }> {
  const demo = launch(options.cwd, options.env ?? {});
  const code = await withTimeout(exited(demo.child), options.timeoutMs ?? 20_000);
  if (code === 'timeout') {
    await demo.stop(0);
    throw new Error(`the demo did not exit within ${options.timeoutMs ?? 20_000} ms:\n${demo.output()}`);
  }
  return { code, output: demo.output() };
}

function launch(cwd: string, env: Record<string, string>): Omit<DemoProcess, 'url' | 'port'> {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const name of DEMO_ENV) delete base[name];
  const child = spawn(process.execPath, ['--import', TSX, SERVER], {
    cwd,
    env: { ...base, HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return {
    child,
    output: () => output,
    async stop(graceMs = 5_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const code = await withTimeout(exited(child), graceMs);
      if (code !== 'timeout') return code;
      child.kill('SIGKILL');
      await withTimeout(exited(child), 5_000);
      return null;
    },
  };
}

/**
 * Starts the demo and waits (at most `timeoutMs`) for it to say where it listens. `env.PORT`
 * defaults to 0: the OS picks a free port on 127.0.0.1.
 */
export async function startDemo(options: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<DemoProcess> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const demo = launch(options.cwd, options.env ?? {});
  const listening = new Promise<string>((resolve, reject) => {
    const check = () => {
      const found = /listening on (http:\/\/\S+)/.exec(demo.output());
      if (found?.[1]) resolve(found[1]);
    };
    demo.child.stdout?.on('data', check);
    demo.child.once('exit', (code) => reject(new Error(`the demo exited with ${code} before listening:\n${demo.output()}`)));
    check();
  });
  // Handled below via the race; this keeps a late rejection (exit after a timeout) from going unhandled.
  listening.catch(() => undefined);
  const url = await withTimeout(listening, timeoutMs).catch(async (error: unknown) => {
    await demo.stop(0);
    throw error;
  });
  if (url === 'timeout') {
    await demo.stop(0);
    throw new Error(`the demo did not start listening within ${timeoutMs} ms:\n${demo.output()}`);
  }
  return { ...demo, url, port: Number(new URL(url).port) };
}
