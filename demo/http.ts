/**
 * Small node:http helpers shared by the pages and the JSON API: bounded body reading, responses,
 * and the request facts the CSRF check needs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CsrfRequest } from '../src/index.js';
import { csrfRequest as nodeCsrfRequest } from '../src/adapters/node.js';
import type { SafeHtml } from './html.js';

/** An error that is the client's fault, answered with its status and message. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads the request body up to `limit` bytes. Over the limit it rejects with 413 at once; the
 * rest of the body is left to node, which discards it after the response, so the client still
 * gets the 413 instead of a reset connection.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (error: Error | null, text?: string) => {
      if (done) return;
      done = true;
      if (error) reject(error);
      else resolve(text ?? '');
    };
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) finish(tooLarge(limit));
      else chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        finish(null, decoder.decode(Buffer.concat(chunks)));
      } catch {
        finish(new HttpError(400, 'the body is not valid UTF-8'));
      }
    });
    req.on('error', (error) => finish(error));
  });
}

function tooLarge(limit: number): HttpError {
  return new HttpError(413, `the body is larger than ${limit} bytes`);
}

/** Parses a JSON body; an empty or malformed one is a 400 with the parser's reason. */
export function parseJson(text: string): unknown {
  if (text.trim() === '') throw new HttpError(400, 'expected a JSON body');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new HttpError(400, `the body is not valid JSON: ${(error as Error).message}`);
  }
}

/** Parses an HTML form post (application/x-www-form-urlencoded only). */
export function parseForm(req: IncomingMessage, text: string): URLSearchParams {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') throw new HttpError(415, 'forms must be posted as application/x-www-form-urlencoded');
  return new URLSearchParams(text);
}

/**
 * Headers every response gets (JSON, pages, text, redirects): no caching of personal pages, no
 * sniffing, no referrer to other sites. Pages add a CSP (no framing) in `sendHtml`.
 */
function baseHeaders(res: ServerResponse): void {
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'same-origin');
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  baseHeaders(res);
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.end(`${JSON.stringify(body, null, 2)}\n`);
}

/** The pages load only our own stylesheet; everything else (scripts, frames, plugins) is off. */
const PAGE_CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export function sendHtml(res: ServerResponse, status: number, page: SafeHtml): void {
  baseHeaders(res);
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Content-Security-Policy', PAGE_CSP);
  res.end(page.value);
}

export function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  baseHeaders(res);
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.end(text);
}

/** Post/Redirect/Get: 303 so the browser follows with a GET and a reload never re-posts. */
export function redirect(res: ServerResponse, location: string): void {
  baseHeaders(res);
  res.statusCode = 303;
  res.setHeader('Location', location);
  res.end();
}

/** What `verifyCsrf` needs from a node request (the library's helper, proxy rules included). */
export function csrfRequest(req: IncomingMessage, trustProxy: boolean, formToken?: string | null): CsrfRequest {
  return nodeCsrfRequest(req, { trustProxy, ...(formToken !== undefined && { formToken }) });
}
