/**
 * One HTTP/1.1 request over a bare socket, returning the bytes exactly as the server sent them:
 * `fetch` would reject a response without a status line, but not say what was on the wire.
 */
import net from 'node:net';

export interface RawExchange {
  /** Everything received until the server closed the connection (latin1). */
  text: string;
  /** The status line's code, or null when the bytes do not start with one. */
  status: number | null;
  headers: Record<string, string[]>;
  body: string;
  /** The connection ended with a complete response: Content-Length met, or the last chunk. */
  complete: boolean;
}

export function rawRequest(url: string, method: string, path: string, headers: Record<string, string> = {}): Promise<RawExchange> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (data: string) => (text += data));
    socket.on('error', () => undefined); // a reset ends the exchange like a close does
    socket.on('close', () => resolve(parse(text)));
    socket.setTimeout(3000, () => {
      socket.destroy();
      reject(new Error(`no close within 3 s; received ${JSON.stringify(text.slice(0, 200))}`));
    });
    const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    socket.write(lines.join('\r\n') + '\r\n\r\n');
  });
}

function parse(text: string): RawExchange {
  const match = /^HTTP\/1\.1 (\d{3})[^\r\n]*\r\n/.exec(text);
  const split = text.indexOf('\r\n\r\n');
  if (!match || split === -1) return { text, status: null, headers: {}, body: '', complete: false };
  const headers: Record<string, string[]> = {};
  for (const line of text.slice(match[0].length, split).split('\r\n')) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    (headers[name] ??= []).push(line.slice(colon + 1).trim());
  }
  const raw = text.slice(split + 4);
  if (headers['transfer-encoding']?.[0] === 'chunked') {
    let body = '';
    let at = 0;
    for (;;) {
      const end = raw.indexOf('\r\n', at);
      if (end === -1) return { text, status: Number(match[1]), headers, body, complete: false };
      const size = parseInt(raw.slice(at, end), 16);
      if (Number.isNaN(size)) return { text, status: Number(match[1]), headers, body, complete: false };
      if (size === 0) return { text, status: Number(match[1]), headers, body, complete: raw.slice(end + 2) === '\r\n' };
      body += raw.slice(end + 2, end + 2 + size);
      at = end + 2 + size + 2;
    }
  }
  const length = Number(headers['content-length']?.[0] ?? NaN);
  return { text, status: Number(match[1]), headers, body: raw, complete: raw.length === length };
}
