/**
 * A `fetch` over cleartext HTTP/2 (h2c, which undici's fetch does not speak), so the adapter
 * scenario suite can drive a `node:http2` server exactly as it drives HTTP/1 ones. One client
 * session per base URL; redirects are never followed (the suite asks for `redirect: 'manual'`).
 */
import { connect, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';

export interface Http2Fetch {
  fetch: typeof fetch;
  close(): Promise<void>;
}

export function http2Fetch(base: string): Http2Fetch {
  let client: ClientHttp2Session | null = null;
  const session = (): ClientHttp2Session => {
    if (client === null || client.closed || client.destroyed) {
      client = connect(base);
      client.on('error', () => undefined); // a request's own 'error' reports it
    }
    return client;
  };

  const h2fetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(String(input), base);
    const headers: OutgoingHttpHeaders = { ':method': init.method ?? 'GET', ':path': url.pathname + url.search };
    new Headers(init.headers).forEach((value, name) => {
      headers[name] = value;
    });
    const body = init.body === undefined || init.body === null ? null : Buffer.from(await new Response(init.body).arrayBuffer());
    return new Promise<Response>((resolve, reject) => {
      const stream = session().request(headers, { endStream: body === null });
      const chunks: Buffer[] = [];
      let head: IncomingHttpHeaders = {};
      stream.on('response', (received) => {
        head = received;
      });
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', reject);
      stream.on('end', () => {
        const status = Number(head[':status']);
        const out = new Headers();
        for (const [name, value] of Object.entries(head)) {
          if (name.startsWith(':') || value === undefined) continue;
          for (const one of Array.isArray(value) ? value : [String(value)]) out.append(name, one);
        }
        const noBody = status === 204 || status === 304 || headers[':method'] === 'HEAD';
        resolve(new Response(noBody ? null : Buffer.concat(chunks), { status, headers: out }));
      });
      if (body !== null) stream.end(body);
    });
  };

  return {
    fetch: h2fetch as typeof fetch,
    close: () =>
      new Promise<void>((resolve) => {
        if (client === null || client.closed) return resolve();
        client.close(() => resolve());
      }),
  };
}
