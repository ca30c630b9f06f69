/**
 * The HTML side: pages for GET, and form posts that check the CSRF token, act, queue a flash
 * message and redirect (Post/Redirect/Get), so a reload never re-posts and each message shows once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getSession } from '../src/adapters/node.js';
import { verifyCsrf, type DeviceSummary } from '../src/index.js';
import * as act from './actions.js';
import type { DemoSession, DemoSessions } from './actions.js';
import { csrfRequest, HttpError, parseForm, readBody, redirect, sendHtml } from './http.js';
import { errorPage, homePage, loginPage, sessionsPage, type Frame } from './pages.js';

export interface WebOptions {
  sessions: DemoSessions;
  storeName: string;
  trustProxy: boolean;
  formLimit: number;
}

type Form = URLSearchParams;
type FormAction = (session: DemoSession, form: Form) => Promise<string> | string;

const GREETINGS = { en: 'Hello', de: 'Hallo' } as const;

/** What every page shows around its content. A HEAD request gets no body, so it leaves the flashes queued. */
function frame(req: IncomingMessage, session: DemoSession, options: WebOptions, title: string, active: Frame['active']): Frame {
  return {
    title,
    user: session.userId,
    csrfToken: session.csrfToken(),
    flashes: req.method === 'HEAD' ? [] : session.consumeFlashes(),
    expiresAt: session.getExpiryDate().toISOString(),
    store: options.storeName,
    active,
  };
}

/** Form actions: each returns where to redirect; `signedIn` ones send guests to the sign-in page. */
function formActions(options: WebOptions): Record<string, { signedIn: boolean; run: FormAction }> {
  const { sessions } = options;
  return {
    '/login': {
      signedIn: false,
      async run(session, form) {
        const name = act.checkUserName(form.get('user'));
        await session.login(name);
        session.flash(`Signed in as ${name}. This is a brand-new session.`, 'success');
        return '/';
      },
    },
    '/logout': {
      signedIn: true,
      async run(session) {
        await session.logout();
        session.flash('Signed out. Your language setting was kept.', 'info');
        return '/login';
      },
    },
    '/language': {
      signedIn: false,
      run(session, form) {
        const language = act.checkLanguage(form.get('language'));
        session.set('language', language);
        session.flash(`Language set to ${act.LANGUAGES[language]}; it survives signing in and out.`, 'success');
        return form.get('back') === '/login' ? '/login' : '/';
      },
    },
    '/counter': {
      signedIn: true,
      run(session, form) {
        if (form.get('action') === 'reset') {
          act.resetCounter(session);
          session.flash('Counter reset.', 'info');
        } else {
          session.flash(`Counter is now ${act.incrementCounter(session)}.`, 'success');
        }
        return '/';
      },
    },
    '/cart': {
      signedIn: true,
      run(session, form) {
        const action = form.get('action');
        if (action === 'clear') {
          act.clearCart(session);
          session.flash('Cart emptied.', 'info');
        } else if (action === 'remove') {
          const item = form.get('item') ?? '';
          act.removeFromCart(session, item);
          session.flash(`Removed ${item} from the cart.`, 'info');
        } else {
          const item = act.checkItem(form.get('item'));
          const quantity = act.addToCart(session, item);
          session.flash(`Added ${/^[aeiou]/.test(item) ? 'an' : 'a'} ${item} to the cart (${quantity} in it now).`, 'success');
        }
        return '/';
      },
    },
    '/note': {
      signedIn: true,
      run(session, form) {
        const note = act.setNote(session, form.get('note'));
        session.flash(note ? 'Note saved. The form carried the CSRF token, so it was accepted.' : 'Note removed.', 'success');
        return '/';
      },
    },
    '/sessions/revoke': {
      signedIn: true,
      async run(session, form) {
        const outcome = await act.revokeDevice(sessions, session, form.get('handle') ?? '');
        if (outcome === 'current') {
          session.flash('This device is signed out.', 'info');
          return '/login';
        }
        session.flash('That device is signed out.', 'success');
        return '/sessions';
      },
    },
    '/sessions/revoke-others': {
      signedIn: true,
      async run(session) {
        const n = await act.revokeOtherDevices(sessions, session);
        session.flash(n === 1 ? 'Signed out 1 other device.' : `Signed out ${n} other devices.`, 'success');
        return '/sessions';
      },
    },
  };
}

/** The page a form was posted from, for "back" links; only our own pages, never a foreign URL. */
function backTo(req: IncomingMessage): string {
  try {
    const path = new URL(req.headers.referer ?? '/', 'http://localhost').pathname;
    return path === '/login' || path === '/sessions' ? path : '/';
  } catch {
    return '/';
  }
}

/** Handles a page request; resolves false when the path is not a page. */
export function webRoutes(options: WebOptions) {
  const actions = formActions(options);
  const { sessions } = options;

  async function page(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const session = await getSession<act.DemoData>(req);
    const user = session.userId;
    if (path === '/login') {
      if (user) redirect(res, '/');
      else sendHtml(res, 200, loginPage(frame(req, session, options, 'Sign in', 'login'), act.language(session)));
      return true;
    }
    if (path !== '/' && path !== '/sessions') return false;
    if (!user) {
      // A revoked or expired session arrives here as a guest: back to the sign-in page.
      redirect(res, '/login');
      return true;
    }
    if (path === '/sessions') {
      let devices: DeviceSummary[] | null;
      try {
        devices = await act.listDevices(sessions, session);
      } catch (error) {
        if (!(error instanceof HttpError && error.status === 501)) throw error;
        devices = null;
      }
      const view = devices?.map((d) => ({ handle: d.id, current: d.current, createdAt: d.createdAt, lastSeenAt: d.lastSeenAt, ip: d.ip, userAgent: d.userAgent })) ?? null;
      sendHtml(res, 200, sessionsPage(frame(req, session, options, 'Your sessions', 'sessions'), view, Date.now()));
      return true;
    }
    const language = act.language(session);
    sendHtml(
      res,
      200,
      homePage(frame(req, session, options, 'Home', 'home'), {
        greeting: GREETINGS[language],
        language,
        count: act.count(session),
        cart: act.readCart(session),
        note: typeof session.get('note') === 'string' ? (session.get('note') as string) : '',
        handle: session.handle,
        createdAt: session.createdAt.toISOString(),
        idleTimeout: sessions.options.idleTimeout,
        absoluteTimeout: sessions.options.absoluteTimeout,
        data: session.toJSON(),
      }),
    );
    return true;
  }

  async function post(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const action = actions[path];
    if (!action) return false;
    const session = await getSession<act.DemoData>(req);
    const back = backTo(req);
    if (action.signedIn && !session.userId) {
      // Signed out meanwhile (revoked elsewhere, expired): nothing is done, so no token is needed;
      // its form still carries the old session's token, which would only earn a confusing 403.
      session.flash('You are not signed in (or this device was signed out elsewhere).', 'info');
      redirect(res, '/login');
      return true;
    }
    try {
      const form = parseForm(req, await readBody(req, options.formLimit));
      const check = await verifyCsrf(session, csrfRequest(req, options.trustProxy, form.get('csrf_token')), { oneTime: false });
      if (!check.ok) throw new HttpError(check.status, `${check.reason}. The form was not accepted.`);
      redirect(res, await action.run(session, form));
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      if (error.status === 403 || error.status >= 413) {
        sendHtml(res, error.status, errorPage(frame(req, session, options, 'Refused', 'error'), error.status, error.message, back));
      } else {
        // A bad value (empty name, unknown item...): say so on the page the form came from.
        session.flash(error.message, 'error');
        redirect(res, back === '/' && !session.userId ? '/login' : back);
      }
    }
    return true;
  }

  return { page, post };
}
