/**
 * Child process serving one benchmark app, so the load generator and the server each get a core.
 * Started by bench/lib/child.ts with the scenario name as argument; talks over IPC:
 * → `{ type: 'ready', port }`; ← `{ type: 'usage' }` answers the process's CPU time and memory;
 * ← `{ type: 'stop' }` closes the app and exits (which also writes a `--cpu-prof` profile when the
 * child runs with one).
 */
import { startApp } from './lib/apps.js';

const scenario = process.argv[2];
if (!scenario || !process.send) {
  console.error('usage: started by the benchmark runner with a scenario name and an IPC channel');
  process.exit(2);
}

const app = await startApp(scenario, {
  redisUrl: process.env.BENCH_REDIS_URL,
  postgresUrl: process.env.BENCH_POSTGRES_URL,
  dir: process.env.BENCH_DIR ?? '.',
});
const address = app.server.address();
process.send({ type: 'ready', port: typeof address === 'object' && address ? address.port : 0 });

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  const force = setTimeout(() => process.exit(1), 5_000);
  try {
    await app.close();
  } finally {
    clearTimeout(force);
    process.exit(0);
  }
}

process.on('message', (message: { type?: string }) => {
  if (message?.type === 'stop') void stop();
  // CPU time used so far (µs): the runner turns it into CPU per request, which unlike req/s does
  // not depend on how busy the other core is.
  if (message?.type === 'usage') process.send?.({ type: 'usage', cpu: process.cpuUsage(), memory: process.memoryUsage() });
});
process.on('disconnect', () => void stop());
