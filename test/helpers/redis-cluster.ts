/**
 * Starts a throwaway 3-master Redis Cluster on loopback for tests: three `redis-server` processes
 * on random ports in 17000–17999 (cluster bus on port + 10000), no persistence, config in a temp
 * dir, and optionally spare masters that own no slot (the target of a resharding onto a new
 * master). Every wait is bounded; `stop()` kills the processes and removes the dir.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crc16 } from '../../src/stores/redis-slot.js';

const run = promisify(execFile);

export interface ClusterNodeAddress {
  host: string;
  port: number;
}

export interface TestCluster {
  /** The masters that own the slots. */
  nodes: ClusterNodeAddress[];
  /** Masters that joined the cluster owning no slot (`spares`). */
  spares: ClusterNodeAddress[];
  /** Sends a signal to the redis-server on `port` (SIGSTOP / SIGCONT / SIGKILL it). */
  signal(port: number, signal: NodeJS.Signals): void;
  stop(): Promise<void>;
}

/** True when `redis-server` and `redis-cli` can be run. */
export function redisServerInstalled(): boolean {
  const server = spawnSync('redis-server', ['--version'], { timeout: 5_000 });
  const cli = spawnSync('redis-cli', ['--version'], { timeout: 5_000 });
  return server.status === 0 && cli.status === 0;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** `count` consecutive ports (and their bus ports) that nothing listens on right now. */
async function pickPorts(count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = 17_000 + Math.floor(Math.random() * (1_000 - count));
    const ports = Array.from({ length: count }, (_, i) => base + i);
    const free = await Promise.all(ports.flatMap((p) => [portFree(p), portFree(p + 10_000)]));
    if (free.every(Boolean)) return ports;
  }
  throw new Error('redis cluster helper: no free port range found in 17000-17999');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5_000 });
  return stdout;
}

/** Polls `check` until it resolves true or `ms` pass; throws `message` (with the last error) on timeout. */
async function waitFor(ms: number, message: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await sleep(100);
  }
  const detail = last instanceof Error ? `: ${last.message}` : '';
  throw new Error(`redis cluster helper: ${message} within ${ms} ms${detail}`);
}

function killAll(processes: ChildProcess[], signal: NodeJS.Signals): void {
  for (const child of processes) {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  }
}

/** Starts the cluster; rejects with a clear message (and cleans up) if it cannot be formed. */
export async function startRedisCluster(options: { masters?: number; spares?: number } = {}): Promise<TestCluster> {
  const masters = options.masters ?? 3;
  const spares = options.spares ?? 0;
  const dir = mkdtempSync(join(tmpdir(), 'coatcheck-redis-cluster-'));
  const processes: ChildProcess[] = [];
  const output = new Map<number, string>();
  // If the test process dies without calling stop(), do not leave servers behind.
  const onExit = () => {
    killAll(processes, 'SIGKILL');
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort while the process is exiting
    }
  };
  process.once('exit', onExit);

  let stopped = false;
  async function stop(): Promise<void> {
    if (stopped) return;
    stopped = true;
    process.off('exit', onExit);
    const exits = processes.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
        }),
    );
    killAll(processes, 'SIGCONT'); // one a test stopped would not act on SIGTERM
    killAll(processes, 'SIGTERM');
    const timer = setTimeout(() => killAll(processes, 'SIGKILL'), 5_000);
    await Promise.all(exits);
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  }

  try {
    const all = await pickPorts(masters + spares);
    const ports = all.slice(0, masters);
    const sparePorts = all.slice(masters);
    for (const port of all) {
      const child = spawn(
        'redis-server',
        [
          '--port', String(port),
          '--bind', '127.0.0.1',
          '--cluster-enabled', 'yes',
          '--cluster-config-file', `nodes-${port}.conf`,
          '--cluster-node-timeout', '5000',
          '--dir', dir,
          '--save', '',
          '--appendonly', 'no',
          '--daemonize', 'no',
          '--loglevel', 'warning',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      output.set(port, '');
      const keep = (chunk: Buffer) => output.set(port, ((output.get(port) ?? '') + chunk.toString()).slice(-4_000));
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      processes.push(child);
    }
    for (const port of all) {
      await waitFor(10_000, `redis-server on port ${port} did not answer PING`, async () => {
        const child = processes[all.indexOf(port)];
        if (child && child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${output.get(port)}`);
        return (await cli(port, 'ping')).trim() === 'PONG';
      });
    }
    try {
      await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], {
        timeout: 30_000,
      });
    } catch (error) {
      const detail = error as { stdout?: string; stderr?: string; message: string };
      throw new Error(`redis cluster helper: redis-cli --cluster create failed: ${detail.message}\n${detail.stdout ?? ''}${detail.stderr ?? ''}`);
    }
    // Spares meet the cluster at once: one that joins a cluster already up waits out
    // cluster-node-timeout (its "rejoin delay") before it says cluster_state:ok.
    const spareIds = await Promise.all(sparePorts.map(async (port) => (await cli(port, 'cluster', 'myid')).trim()));
    for (const port of sparePorts) await cli(ports[0] as number, 'cluster', 'meet', '127.0.0.1', String(port));
    for (const port of all) {
      await waitFor(20_000, `node ${port} did not reach cluster_state:ok`, async () =>
        (await cli(port, 'cluster', 'info')).includes('cluster_state:ok'),
      );
    }
    // Joined once every node lists every spare as a connected master.
    for (const port of all) {
      await waitFor(20_000, `node ${port} did not see the spare masters join`, async () => {
        const lines = (await cli(port, 'cluster', 'nodes')).split('\n');
        return spareIds.every((id) =>
          lines.some((line) => {
            const flags = line.split(' ')[2]?.split(',') ?? [];
            return line.startsWith(`${id} `) && flags.includes('master') && !flags.includes('handshake') && line.includes(' connected');
          }),
        );
      });
    }
    const signal = (port: number, name: NodeJS.Signals): void => {
      const child = processes[all.indexOf(port)];
      if (!child) throw new Error(`redis cluster helper: no redis-server of this cluster on port ${port}`);
      child.kill(name);
    };
    return { nodes: ports.map((port) => ({ host: '127.0.0.1', port })), spares: sparePorts.map((port) => ({ host: '127.0.0.1', port })), signal, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * `count` random session ids (43 base64url characters, like the engine's) whose keys all hash to
 * `slot` (a session key's hash tag is its id): a random stem and a searched 4-character tail.
 */
export function idsInSlot(slot: number, count: number): string[] {
  const stem = randomBytes(30).toString('base64url').slice(0, 39);
  const stemCrc = crc16(0, Buffer.from(stem));
  const tail = new Uint8Array(4);
  const out: string[] = [];
  for (let n = 0; out.length < count && n < 64 ** 4; n++) {
    for (let i = 0; i < 4; i++) tail[i] = BASE64URL.charCodeAt(Math.floor(n / 64 ** i) % 64);
    if ((crc16(stemCrc, tail) & 16383) === slot) out.push(stem + String.fromCharCode(...tail));
  }
  return out;
}
