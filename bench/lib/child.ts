/**
 * Starts bench/server.ts in a child process for one scenario and stops it again. Every child is
 * also killed if the runner exits early (Ctrl-C, a thrown error).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE_SERVER = fileURLToPath(new URL('../server.ts', import.meta.url));
const live = new Set<ChildProcess>();

process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface Usage {
  /** CPU time used by the server process so far, µs (user + system). */
  cpu: number;
  heapUsed: number;
  rss: number;
}

export interface ServerChild {
  readonly url: string;
  readonly pid: number;
  usage(): Promise<Usage>;
  stop(): Promise<void>;
}

export interface ChildOptions {
  redisUrl?: string;
  postgresUrl?: string;
  dir: string;
  /** Write a V8 CPU profile of the server into this directory (`--cpu-prof`). */
  cpuProfileDir?: string;
  /** The compiled server (bench/lib/build.ts); default: bench/server.ts through tsx. */
  serverScript?: string;
}

export function startServerChild(scenario: string, options: ChildOptions): Promise<ServerChild> {
  const script = options.serverScript ?? SOURCE_SERVER;
  const execArgv = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  if (options.cpuProfileDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${join(options.cpuProfileDir, scenario)}`);
  const child = fork(script, [scenario], {
    execArgv,
    env: { ...process.env, BENCH_REDIS_URL: options.redisUrl ?? '', BENCH_POSTGRES_URL: options.postgresUrl ?? '', BENCH_DIR: options.dir, NODE_ENV: 'production' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  live.add(child);
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void gone.then(() => live.delete(child));

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${scenario}: server did not start within 30 s`));
    }, 30_000);
    const early = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`${scenario}: server exited with code ${code} before it was ready`));
    };
    child.once('exit', early);
    child.on('message', (message: { type?: string; port?: number }) => {
      if (message?.type !== 'ready') return;
      clearTimeout(timer);
      child.off('exit', early);
      resolve({
        url: `http://127.0.0.1:${message.port}`,
        pid: child.pid ?? 0,
        usage() {
          return new Promise<Usage>((done, fail) => {
            const timeout = setTimeout(() => fail(new Error(`${scenario}: no usage answer`)), 5_000);
            const listener = (reply: { type?: string; cpu?: NodeJS.CpuUsage; memory?: NodeJS.MemoryUsage }) => {
              if (reply?.type !== 'usage' || !reply.cpu || !reply.memory) return;
              clearTimeout(timeout);
              child.off('message', listener);
              done({ cpu: reply.cpu.user + reply.cpu.system, heapUsed: reply.memory.heapUsed, rss: reply.memory.rss });
            };
            child.on('message', listener);
            child.send({ type: 'usage' });
          });
        },
        async stop() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
          child.send({ type: 'stop' });
          await gone;
          clearTimeout(force);
        },
      });
    });
  });
}
