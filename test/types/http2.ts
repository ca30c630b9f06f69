/** `withSessions` on node:http2's compatibility API: the handler's types follow the server's. */
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { createSessions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import { csrfRequest, getSession, withSessions } from '../../src/adapters/node.js';

const sessions = createSessions({ store: memoryStore() });

// Inferred from http2.createServer's handler type.
http2.createServer(
  withSessions(sessions, async (req, res) => {
    (await getSession(req)).set('authority', req.authority);
    res.end();
  }),
);

// createSecureServer's overloads do not pass their types on: annotate the handler.
http2.createSecureServer(
  {},
  withSessions(
    sessions,
    async (req: Http2ServerRequest, res: Http2ServerResponse) => {
      void csrfRequest(req);
      res.end(req.scheme);
    },
    { onError: (_error, req, res) => res.end(req.authority) },
  ),
);
