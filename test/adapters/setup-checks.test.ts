/**
 * Misuse of an adapter throws at setup, with a ConfigError naming the option, never on a request.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expressSessions } from '../../src/adapters/express.js';
import { withSessions as withFetchSessions } from '../../src/adapters/fetch.js';
import { honoSessions } from '../../src/adapters/hono.js';
import { koaSessions } from '../../src/adapters/koa.js';
import { fastifySessions } from '../../src/adapters/fastify.js';
import { getSession as getExpressSession } from '../../src/adapters/express.js';
import { getSession as getFetchSession } from '../../src/adapters/fetch.js';
import { getSession as getKoaSession } from '../../src/adapters/koa.js';
import { getSession as getNodeSession, withSessions as withNodeSessions } from '../../src/adapters/node.js';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import Fastify from 'fastify';
import { ConfigError } from '../../src/errors.js';
import { createSessions, type Sessions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';

const refused = (call: () => unknown, message: RegExp) =>
  assert.throws(call, (error: unknown) => error instanceof ConfigError && error.code === 'ERR_CONFIG' && message.test(error.message));

describe('adapter setup checks', () => {
  const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
  const notSessions = {} as unknown as Sessions;
  const handler = () => new Response('ok');

  it('refuses something that is not what createSessions() returned', () => {
    refused(() => expressSessions(notSessions), /expressSessions\(sessions\)/);
    refused(() => koaSessions(notSessions), /koaSessions\(sessions\)/);
    refused(() => honoSessions(notSessions), /honoSessions\(sessions\)/);
    refused(() => withNodeSessions(notSessions, () => undefined), /withSessions\(sessions, handler\)/);
    refused(() => withFetchSessions(notSessions, handler), /withSessions\(sessions, handler\)/);
  });

  it('refuses a handler that is not a function', () => {
    refused(() => withNodeSessions(sessions, 'nope' as never), /handler must be a function/);
    refused(() => withFetchSessions(sessions, null as never), /handler must be a function/);
  });

  it('refuses options of the wrong type, naming the option', () => {
    refused(() => expressSessions(sessions, { eager: 'yes' as never }), /option eager must be a boolean, got string/);
    refused(() => expressSessions(sessions, { shareShapes: 0 as never }), /option shareShapes must be a boolean, got number/);
    refused(() => expressSessions(sessions, { onError: {} as never }), /option onError must be a function, got object/);
    refused(() => withNodeSessions(sessions, () => undefined, { onError: 'x' as never }), /option onError must be a function/);
    refused(() => withFetchSessions(sessions, handler, { getClientIp: null as never }), /option getClientIp must be a function, got null/);
    refused(() => honoSessions(sessions, { onError: 1 as never }), /option onError must be a function/);
    refused(() => expressSessions(sessions, 'eager' as never), /options must be an object/);
  });

  it('takes the documented options, and leaves undefined ones to their defaults', () => {
    assert.equal(typeof expressSessions(sessions, { eager: true, shareShapes: false, onError: () => undefined }), 'function');
    assert.equal(typeof expressSessions(sessions, { eager: undefined }), 'function');
    assert.equal(typeof withNodeSessions(sessions, () => undefined, { onError: () => undefined }), 'function');
    assert.equal(typeof withFetchSessions(sessions, handler, { getClientIp: () => null, onError: () => new Response('') }), 'function');
    assert.equal(typeof honoSessions(sessions, { getClientIp: () => null }), 'function');
  });

  it('refuses option names the adapter does not have, with a "did you mean"', async () => {
    refused(() => expressSessions(sessions, { eagr: true } as never), /^coatcheck: expressSessions: unknown option eagr: did you mean eager\?/);
    refused(() => expressSessions(sessions, { secret: 'keyboard cat' } as never), /expressSessions: unknown option secret: server-side sessions need no secret/);
    refused(() => withFetchSessions(sessions, handler, { onErorr: () => new Response('') } as never), /withSessions: unknown option onErorr: did you mean onError\?/);
    refused(() => honoSessions(sessions, { getClientIP: () => null } as never), /honoSessions: unknown option getClientIP: did you mean getClientIp\?/);
    refused(() => withNodeSessions(sessions, () => undefined, { onEror: () => undefined } as never), /withSessions: unknown option onEror: did you mean onError\?/);
    refused(() => koaSessions(sessions, { eager: true } as never), /koaSessions: unknown option eager: it takes no options/);
    assert.equal(typeof koaSessions(sessions), 'function');
    // Fastify: refused at registration; Fastify's own register options are accepted.
    await assert.rejects(async () => {
      await Fastify().register(fastifySessions, { sessions, onError: () => undefined } as never);
    }, /fastifySessions: unknown option onError/);
    await Fastify().register(fastifySessions, { sessions, prefix: '/x', logLevel: 'warn' }).ready();
  });

  it('getSession where no adapter opened a session rejects (never throws), naming the missing mount', async () => {
    const req = new IncomingMessage(new Socket());
    const calls: [string, () => Promise<unknown>, RegExp][] = [
      ['express', () => getExpressSession(req), /expressSessions\(sessions\)\) before the routes/],
      ['node', () => getNodeSession(req), /withSessions\(sessions, handler\) from coatcheck\/node/],
      ['fetch', () => getFetchSession(new Request('http://localhost/')), /not wrapped in withSessions/],
      ['koa', () => getKoaSession({} as never), /app\.use\(koaSessions\(sessions\)\) before/],
      // No request at all (a call made outside any handler).
      ['node, no request', () => getNodeSession(undefined as never), /withSessions\(sessions, handler\) from coatcheck\/node/],
      ['fetch, no request', () => getFetchSession(undefined as never), /not wrapped in withSessions/],
    ];
    for (const [name, call, message] of calls) {
      let outcome: Promise<unknown> | undefined;
      assert.doesNotThrow(() => {
        outcome = call();
      }, name);
      await assert.rejects(outcome!, (error: unknown) => error instanceof ConfigError && message.test(error.message) && !/context: false/.test(error.message), name);
    }
  });
});
