/**
 * The scenario app on the node adapter, for node:http and node:http2's compatibility API alike:
 * the same handler, and the same wrapped-in-wrapped handler for the suite's several mounts.
 */
import { getSession, type NodeRequest, type NodeResponse, withSessions } from '../../src/adapters/node.js';
import type { Sessions } from '../../src/core/sessions.js';
import type { JsonValue } from '../../src/types.js';
import { betweenMounts, scenarioRoute } from './scenario-app.js';

/** The scenario app as a node handler. */
export async function nodeScenarioHandler(req: NodeRequest, res: NodeResponse): Promise<void> {
  const reply = await scenarioRoute(req.method as string, new URL(req.url as string, 'http://localhost'), () => getSession(req));
  if (reply.appCookie) res.setHeader('Set-Cookie', reply.appCookie);
  if (reply.cacheControl) res.setHeader('Cache-Control', reply.cacheControl);
  res.statusCode = reply.status;
  res.setHeader('Content-Type', typeof reply.body === 'string' ? 'text/plain' : 'application/json');
  res.end(typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body));
}

/** A wrapped handler called from a wrapped one, one wrapper per engine (the first outermost). */
export function nestedNodeHandler<Req extends NodeRequest, Res extends NodeResponse>(
  engines: Sessions<Record<string, JsonValue>>[],
): (req: Req, res: Res) => Promise<void> {
  let handler = withSessions<Record<string, JsonValue>, Req, Res>(engines.at(-1)!, nodeScenarioHandler);
  for (const sessions of engines.slice(0, -1).reverse()) {
    const inner = handler;
    handler = withSessions<Record<string, JsonValue>, Req, Res>(sessions, async (req, res) => {
      await betweenMounts(() => getSession(req));
      await inner(req, res);
    });
  }
  return handler;
}
