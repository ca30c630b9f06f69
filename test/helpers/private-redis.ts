/**
 * A private `redis-server` for fault tests and benchmarks: one process on a random free loopback
 * port, its files in a temp dir, never the shared server on 6379. It can be killed (`kill -9`)
 * and started again on the same port and dir; with `persist: true` it runs an append-only file
 * fsynced on every write, so an acknowledged write survives `kill -9`.
 * Every wait is bounded, and the process is killed if the test process exits without `stop()`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface PrivateRedisOptions {
  /** Append-only file with `appendfsync always` (durable across kill -9). Default false: no files at all. */
  persist?: boolean;
  /** Extra `redis-server` arguments. */
  args?: string[];
}

export interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  /** The server's process id while it runs, else null. */
  readonly pid: number | null;
  /** SIGKILL (kill -9), resolving once the process is gone. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and dir; resolves once it answers PING. */
  start(): Promise<void>;
  /** Runs `redis-cli` against this server and returns its output. */
  cli(...args: string[]): Promise<string>;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its dir. Idempotent. */
  stop(): Promise<void>;
}

/** A loopback port nothing listens on right now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'coatcheck-private-redis-'));
  const port = await freePort();
  let child: ChildProcess | null = null;
  let output = '';
  let stopped = false;

  const persistence = options.persist
    ? ['--appendonly', 'yes', '--appendfsync', 'always', '--save', '']
    : ['--appendonly', 'no', '--save', ''];
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--daemonize', 'no',
    '--loglevel', 'warning',
    ...persistence,
    ...(options.args ?? []),
  ];

  const onExit = () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort while exiting
    }
  };
  process.once('exit', onExit);

  async function cli(...cliArgs: string[]): Promise<string> {
    const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...cliArgs], { timeout: 5_000 });
    return stdout;
  }

  async function start(): Promise<void> {
    if (stopped) throw new Error('private redis: already stopped');
    if (child && child.exitCode === null && child.signalCode === null) return;
    output = '';
    const spawned = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = spawned;
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4_000);
    };
    spawned.stdout?.on('data', keep);
    spawned.stderr?.on('data', keep);
    spawned.on('error', (error) => {
      output += String(error);
    });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (spawned.exitCode !== null) break;
      try {
        if ((await cli('ping')).trim() === 'PONG') return;
      } catch {
        // not up yet
      }
      await sleep(50);
    }
    spawned.kill('SIGKILL');
    throw new Error(`private redis on port ${port} did not answer PING within 10 s: ${output}`);
  }

  await start();

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child && child.exitCode === null && child.signalCode === null ? (child.pid ?? null) : null;
    },
    async kill() {
      if (!child) return;
      const current = child;
      if (current.exitCode === null && current.signalCode === null) current.kill('SIGKILL');
      await exited(current);
    },
    start,
    cli,
    async stop() {
      if (stopped) return;
      stopped = true;
      process.off('exit', onExit);
      if (child) {
        const current = child;
        if (current.exitCode === null && current.signalCode === null) current.kill('SIGTERM');
        const timer = setTimeout(() => current.kill('SIGKILL'), 5_000);
        await exited(current);
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
