/**
 * RFC 6265 §5.1.4 path-match: whether a browser sends a cookie with `Path=cookiePath` on a request
 * for `requestTarget` (its query and fragment ignored). Unknown targets match: only an adapter
 * that knows the request's path can apply the rule.
 */
export function pathMatches(requestTarget: string | null | undefined, cookiePath: string): boolean {
  if (requestTarget === null || requestTarget === undefined || cookiePath === '/') return true;
  // An absolute-form target (`GET http://host/app HTTP/1.1`, as sent to proxies): its path.
  if (!requestTarget.startsWith('/')) {
    const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(requestTarget);
    if (scheme !== null) requestTarget = requestTarget.slice(scheme[0].length) || '/';
  }
  let end = requestTarget.length;
  const query = requestTarget.indexOf('?');
  if (query !== -1) end = query;
  const fragment = requestTarget.indexOf('#');
  if (fragment !== -1 && fragment < end) end = fragment;
  const path = requestTarget.slice(0, end) || '/';
  if (path === cookiePath) return true;
  if (!path.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || path[cookiePath.length] === '/';
}
