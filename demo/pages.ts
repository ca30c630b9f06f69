/**
 * The demo's HTML: plain server-rendered pages built from view models (no session access here),
 * every value escaped by the `html` tag. Every form carries the session's CSRF token.
 */
import { CATALOGUE, LANGUAGES, MAX_NAME_LENGTH, MAX_NOTE_LENGTH } from './actions.js';
import { describeBrowser, displayIp, timeAgo } from './devices.js';
import { html, type SafeHtml } from './html.js';

/** A readable UTC time: 2026-01-31 14:05 UTC. */
export function formatTime(iso: string | number): string {
  return `${new Date(iso).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

export interface Flash {
  message: string;
  category: string;
}

/** What every page shows around its content. */
export interface Frame {
  title: string;
  user: string | null;
  csrfToken: string;
  flashes: Flash[];
  /** Where the session ends if this request is its last (ISO), and the store in use. */
  expiresAt: string;
  store: string;
  active: 'home' | 'sessions' | 'login' | 'error';
}

function csrfField(token: string): SafeHtml {
  return html`<input type="hidden" name="csrf_token" value="${token}">`;
}

/** A one-button form posting to `action` with hidden fields and the CSRF token. */
function button(frame: Frame, action: string, label: string, fields: Record<string, string> = {}, style = ''): SafeHtml {
  return html`<form method="post" action="${action}" class="inline">${csrfField(frame.csrfToken)}${Object.entries(fields).map(
    ([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`,
  )}<button type="submit" class="${style}">${label}</button></form>`;
}

function layout(frame: Frame, content: SafeHtml): SafeHtml {
  const nav = (href: string, label: string, key: Frame['active']) =>
    html`<a href="${href}"${frame.active === key ? html` aria-current="page"` : ''}>${label}</a>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${frame.title} · coatcheck demo</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<header>
  <a class="brand" href="/"><span class="ticket">№</span> coatcheck <span>demo</span></a>
  <nav>${frame.user ? [nav('/', 'Home', 'home'), nav('/sessions', 'Your sessions', 'sessions')] : nav('/login', 'Sign in', 'login')}</nav>
  ${frame.user ? html`<div class="who">Signed in as <strong data-testid="user">${frame.user}</strong> ${button(frame, '/logout', 'Sign out', {}, 'link')}</div>` : ''}
</header>
<main>
${frame.flashes.map((f) => html`<p class="flash flash-${f.category}" role="status">${f.message}</p>`)}
${content}
</main>
<footer>This session expires ${formatTime(frame.expiresAt)} if left idle · store: <code>${frame.store}</code> · <a href="/api/session">/api/session</a></footer>
</body>
</html>
`;
}

function languageSwitch(frame: Frame, current: string, back: string): SafeHtml {
  return html`<div class="languages">Language:
${Object.entries(LANGUAGES).map(([code, label]) =>
    code === current ? html`<strong>${label}</strong>` : button(frame, '/language', label, { language: code, back }, 'link'),
  )}</div>`;
}

export function loginPage(frame: Frame, language: string): SafeHtml {
  return layout(
    frame,
    html`<section class="card narrow">
<h1>Sign in</h1>
<p>Any name will do — there is no password, it is a demo.</p>
<form method="post" action="/login" class="stack">
  ${csrfField(frame.csrfToken)}
  <label>Name <input name="user" required maxlength="${MAX_NAME_LENGTH}" autocomplete="username" autofocus placeholder="alice"></label>
  <button type="submit">Sign in</button>
</form>
<p class="hint">Signing in starts a new session with a new id (so a cookie planted before sign-in is worthless) and keeps only your language.</p>
${languageSwitch(frame, language, '/login')}
</section>`,
  );
}

export interface HomeView {
  greeting: string;
  language: string;
  count: number;
  cart: Map<string, number>;
  note: string;
  handle: string | null;
  createdAt: string;
  idleTimeout: number;
  absoluteTimeout: number;
  data: unknown;
}

export function homePage(frame: Frame, view: HomeView): SafeHtml {
  const cartRows = [...view.cart].map(
    ([item, quantity]) => html`<li><span>${quantity} × ${item}</span> ${button(frame, '/cart', 'Remove', { action: 'remove', item }, 'link')}</li>`,
  );
  return layout(
    frame,
    html`<h1>${view.greeting}, ${frame.user}</h1>
<div class="grid">
<section class="card">
  <h2>Counter</h2>
  <p class="count" data-testid="count">${view.count}</p>
  <div class="row">${button(frame, '/counter', '+1', { action: 'increment' })} ${button(frame, '/counter', 'Reset', { action: 'reset' }, 'secondary')}</div>
  <p class="hint">Kept in the session under <code>count</code>; only changed keys are written.</p>
</section>
<section class="card">
  <h2>Cart</h2>
  ${cartRows.length ? html`<ul class="cart" data-testid="cart">${cartRows}</ul>` : html`<p class="muted" data-testid="cart">Your cart is empty.</p>`}
  <form method="post" action="/cart" class="row">
    ${csrfField(frame.csrfToken)}<input type="hidden" name="action" value="add">
    <select name="item" aria-label="Item">${CATALOGUE.map((item) => html`<option>${item}</option>`)}</select>
    <button type="submit">Add to cart</button>
  </form>
  ${cartRows.length ? button(frame, '/cart', 'Empty the cart', { action: 'clear' }, 'secondary') : ''}
</section>
<section class="card">
  <h2>A CSRF-protected form</h2>
  <form method="post" action="/note" class="stack">
    ${csrfField(frame.csrfToken)}
    <label>Note <input name="note" maxlength="${MAX_NOTE_LENGTH}" value="${view.note}" placeholder="Leave a note in your session"></label>
    <button type="submit">Save note</button>
  </form>
  <form method="post" action="/note" class="stack">
    <input type="hidden" name="note" value="posted without the token">
    <button type="submit" class="danger">Send the same form without its token</button>
  </form>
  <p class="hint">Every form here carries the session's token in a hidden field; the second one doesn't, and is refused with 403.</p>
</section>
<section class="card">
  <h2>This session</h2>
  <dl>
    <dt>Handle</dt><dd><code title="${view.handle ?? ''}">${view.handle ? `${view.handle.slice(0, 12)}…` : 'not stored yet'}</code></dd>
    <dt>Started</dt><dd>${formatTime(view.createdAt)}</dd>
    <dt>Expires</dt><dd>${formatTime(frame.expiresAt)} unless used again</dd>
    <dt>Timeouts</dt><dd>${view.idleTimeout} s idle, ${view.absoluteTimeout} s absolute</dd>
  </dl>
  ${languageSwitch(frame, view.language, '/')}
  <details><summary>Session data</summary><pre>${JSON.stringify(view.data, null, 2)}</pre></details>
</section>
</div>`,
  );
}

export interface DeviceView {
  handle: string;
  current: boolean;
  createdAt: number;
  lastSeenAt: number;
  ip: string | null;
  userAgent: string | null;
}

export function sessionsPage(frame: Frame, devices: DeviceView[] | null, now: number): SafeHtml {
  const rows = (devices ?? []).map(
    (d) => html`<tr data-testid="device"${d.current ? html` class="current"` : ''}>
  <td><strong>${describeBrowser(d.userAgent)}</strong>${d.current ? html` <span class="badge">this device</span>` : ''}<div class="muted small" title="${d.userAgent ?? ''}">${d.userAgent ?? ''}</div></td>
  <td>${displayIp(d.ip)}</td>
  <td title="${formatTime(d.createdAt)}">${timeAgo(d.createdAt, now)}</td>
  <td title="${formatTime(d.lastSeenAt)}">${timeAgo(d.lastSeenAt, now)}</td>
  <td>${button(frame, '/sessions/revoke', 'Sign out this device', { handle: d.handle }, 'secondary')}</td>
</tr>`,
  );
  const others = (devices ?? []).filter((d) => !d.current).length;
  return layout(
    frame,
    html`<h1>Your sessions</h1>
${
  devices === null
    ? html`<p class="card">The cookie store keeps sessions only in browsers, so they can't be listed or signed out one by one. Use a server-side store (SQLite, Redis, PostgreSQL) for this page.</p>`
    : html`<section class="card">
<p>Everywhere you are signed in as <strong>${frame.user}</strong>. Signing out a device deletes its session on the server; its next request arrives as a guest.</p>
<table>
<thead><tr><th>Browser</th><th>IP</th><th>Signed in</th><th>Last seen</th><th></th></tr></thead>
<tbody>${rows}</tbody>
</table>
<div class="row">${others > 0 ? button(frame, '/sessions/revoke-others', 'Sign out everywhere else', {}, 'danger') : html`<p class="muted">No other devices.</p>`}</div>
</section>`
}`,
  );
}

export function errorPage(frame: Frame, status: number, message: string, back: string): SafeHtml {
  return layout(
    frame,
    html`<section class="card narrow error">
<h1>${status === 403 ? 'Refused' : 'Something is wrong'} <span class="muted">(${status})</span></h1>
<p data-testid="error">${message}</p>
<p><a href="${back}">Back</a></p>
</section>`,
  );
}

/** For failures where the session itself is unavailable (store down): no session-dependent parts. */
export function bareErrorPage(status: number, message: string): SafeHtml {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${status} · coatcheck demo</title><link rel="stylesheet" href="/style.css"></head>
<body><main><section class="card narrow error"><h1>Something is wrong <span class="muted">(${status})</span></h1><p>${message}</p><p><a href="/">Try again</a></p></section></main></body></html>
`;
}
