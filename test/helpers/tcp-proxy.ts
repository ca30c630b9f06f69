/**
 * A loopback TCP proxy for fault tests: sits between a client (a store) and a real server and can
 * stall traffic, refuse new connections, and drop or reset the open ones, on command.
 *
 * - `pass`: bytes flow both ways (the default).
 * - `stall`: bytes are held in the proxy, in order, and delivered when the mode returns to `pass`
 *   (a network that stopped answering; TCP sockets stay open). New connections wait too.
 * - `refuse`: new connections are reset at once (a server that is down).
 * `drop()` closes every open connection (FIN), `reset()` aborts them (RST).
 */
import { connect, createServer, type Socket } from 'node:net';

export type ProxyMode = 'pass' | 'stall' | 'refuse';

export interface TcpProxy {
  readonly port: number;
  readonly mode: ProxyMode;
  /** Open client connections. */
  readonly connections: number;
  setMode(mode: ProxyMode): void;
  drop(): void;
  reset(): void;
  close(): Promise<void>;
}

interface Link {
  client: Socket;
  upstream: Socket;
  held: Array<() => void>;
}

export function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: ProxyMode = 'pass';
  const links = new Set<Link>();

  function forward(link: Link, from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (mode === 'stall') link.held.push(() => to.write(chunk));
      else to.write(chunk);
    });
    from.on('end', () => (mode === 'stall' ? link.held.push(() => to.end()) : to.end()));
  }

  const server = createServer((client) => {
    if (mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    const link: Link = { client, upstream, held: [] };
    links.add(link);
    const close = () => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    forward(link, client, upstream);
    forward(link, upstream, client);
  });

  const each = (fn: (link: Link) => void) => [...links].forEach(fn);

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      resolve({
        port,
        get mode() {
          return mode;
        },
        get connections() {
          return links.size;
        },
        setMode(next) {
          mode = next;
          if (next === 'pass') each((link) => link.held.splice(0).forEach((deliver) => deliver()));
        },
        drop: () => each((link) => (link.client.destroy(), link.upstream.destroy())),
        reset: () => each((link) => (link.client.resetAndDestroy(), link.upstream.resetAndDestroy())),
        close() {
          each((link) => (link.client.destroy(), link.upstream.destroy()));
          return new Promise((done) => server.close(() => done()));
        },
      });
    });
  });
}
