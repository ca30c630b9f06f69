/**
 * coatcheck: sessions for Node web apps. The browser holds a ticket (the cookie); the server keeps
 * the coat (the data).
 * @module coatcheck
 */
export { createSessions, GUEST_USER, type Sessions, type ClearExpiredOptions, type DeviceSummary } from './core/sessions.js';
export { Session, type RequestInfo, type CommitResult } from './core/session.js';
export type { SessionsOptions, CookieOptions, ResolvedOptions } from './core/options.js';
export { SessionEvents, type SessionEventMap, type SessionEventName, type DestroyReason } from './core/events.js';
export { currentSession, useSession } from './core/context.js';
export type { Clock } from './core/clock.js';
export * from './errors.js';
export type * from './types.js';
export type {
  Awaitable,
  Store,
  ClientStore,
  AnyStore,
  SessionRecord,
  SessionPatch,
  SessionSummary,
  KeyChanges,
  ExpiredSweep,
  SweepResult,
  StoreStats,
  StoreStatsOptions,
  EmptyDestroyResult,
  UnsupportedOperation,
} from './stores/types.js';
export { verifyCsrf, type CsrfRequest, type CsrfOptions, type CsrfResult } from './security/csrf.js';
