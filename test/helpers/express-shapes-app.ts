/**
 * Child process for the Express hidden-class test: serves pairs of concurrent requests through
 * `expressSessions` and asks V8 whether the two requests' `req` (and `res`) objects share a hidden
 * class at the route. Run with `--allow-natives-syntax`; prints `{ pairs, sameReq, sameRes }`.
 * Args: the Express module to load (`express` or `express4`), then `on` or `off` (shareShapes).
 */
import { createRequire } from 'node:module';
import { createServer, get, Agent } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express, Request, Response } from 'express';
import { expressSessions } from '../../src/adapters/express.js';
import { createSessions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';

const [moduleName = 'express', mode = 'on'] = process.argv.slice(2);
const express = createRequire(import.meta.url)(moduleName) as () => Express;
// V8's own check, parsed only at run time so the file stays plain TypeScript. Test code with a
// fixed string: the rule guards session data, which never reaches this.
// eslint-disable-next-line no-restricted-syntax
const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
const app = express();
app.use(expressSessions(sessions, { shareShapes: mode === 'on' }));
let held: { req: Request; res: Response } | null = null;
const counts = { pairs: 0, sameReq: 0, sameRes: 0 };
app.get('/', (req, res) => {
  // The first of a pair waits for the second, so both are compared at the same point.
  if (held === null) {
    held = { req, res };
    return;
  }
  counts.pairs++;
  if (sameMap(req, held.req)) counts.sameReq++;
  if (sameMap(res, held.res)) counts.sameRes++;
  res.send('b');
  held.res.send('a');
  held = null;
});

const server = createServer(app);
server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address() as AddressInfo;
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });
  const one = () =>
    new Promise<void>((resolve, reject) => {
      get({ host: '127.0.0.1', port, agent, path: '/' }, (response) => {
        response.resume();
        response.on('end', resolve);
      }).on('error', reject);
    });
  for (let i = 0; i < 50; i++) await Promise.all([one(), one()]);
  agent.destroy();
  server.close();
  await sessions.close();
  process.stdout.write(JSON.stringify(counts));
});
