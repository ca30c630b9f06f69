/**
 * Load generation with autocannon, one session per connection: every connection first signs in
 * (its own `POST /login`), then sends its own cookie on every request, and adopts any cookie the
 * server sends back (as a browser would: iron-session and the cookie store re-seal on each write).
 */
import autocannon from 'autocannon';

export interface LoadOptions {
  /** Seconds of measurement. */
  duration: number;
  connections: number;
}

export interface LoadResult {
  /** Mean requests per second over the run's one-second samples. */
  rps: number;
  /** Latency percentiles and mean, ms. */
  p50: number;
  p99: number;
  mean: number;
  /** 2xx responses. */
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  seconds: number;
}

/** The `Cookie` header a browser would send after these Set-Cookie lines (deleted cookies left out). */
export function cookieHeaderFrom(setCookie: readonly string[], previous = ''): string {
  const jar = new Map<string, string>();
  for (const pair of previous.split(';')) {
    const eq = pair.indexOf('=');
    if (eq > 0) jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  for (const line of setCookie) {
    const [pair = '', ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    if (attributes.some((a) => /^\s*max-age=0\s*$/i.test(a))) jar.delete(name);
    else jar.set(name, pair.slice(eq + 1).trim());
  }
  return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
}

/** Signs in `count` users and returns each one's Cookie header. */
export async function signIn(base: string, count: number, tag = 'u'): Promise<string[]> {
  const cookies: string[] = [];
  for (let i = 0; i < count; i += 16) {
    const batch = Array.from({ length: Math.min(16, count - i) }, async (_, j) => {
      const response = await fetch(`${base}/login?user=${tag}${i + j}`, { method: 'POST' });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`login answered ${response.status}`);
      return cookieHeaderFrom(response.headers.getSetCookie());
    });
    cookies.push(...(await Promise.all(batch)));
  }
  return cookies;
}

interface ParserHeaders {
  headers?: string[];
}
interface AutocannonClient {
  setHeaders(headers: Record<string, string>): void;
  on(event: 'headers', listener: (info: ParserHeaders) => void): void;
}

/**
 * Runs `path` with one cookie per connection (none when `cookies` is empty). A cookie the server
 * replaces is written back into `cookies`, so the caller can read each session's final state.
 */
export async function runLoad(base: string, path: string, cookies: string[], options: LoadOptions): Promise<LoadResult> {
  let next = 0;
  const result = await autocannon({
    url: base + path,
    connections: options.connections,
    duration: options.duration,
    timeout: 10,
    setupClient(raw: unknown) {
      const client = raw as AutocannonClient;
      if (cookies.length === 0) return;
      const slot = next++ % cookies.length;
      let cookie = cookies[slot] as string;
      client.setHeaders({ cookie });
      client.on('headers', (info) => {
        const raw = info.headers ?? [];
        let lines: string[] | undefined;
        for (let i = 0; i < raw.length; i += 2) {
          if ((raw[i] as string).length === 10 && (raw[i] as string).toLowerCase() === 'set-cookie') (lines ??= []).push(raw[i + 1] as string);
        }
        if (!lines) return;
        cookie = cookieHeaderFrom(lines, cookie);
        cookies[slot] = cookie;
        client.setHeaders({ cookie });
      });
    },
  } as autocannon.Options);
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    mean: result.latency.average,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds: result.duration,
  };
}
