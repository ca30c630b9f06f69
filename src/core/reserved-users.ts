/**
 * User ids the engine gives a meaning of its own; `login()` refuses them.
 */

/** `killSessionsByUser(GUEST_USER)` ends every session without a user. */
export const GUEST_USER = '__guest__';

/**
 * The user of a rotated-away record (the forwarder kept for the grace window): it is no device
 * of anyone's (listings, `maxSessionsPerUser`) and no guest session, and once the session it leads
 * to has ended, it leads nowhere.
 */
export const FORWARDER_USER = '__moved__';

export function isReservedUser(userId: string): boolean {
  return userId === GUEST_USER || userId === FORWARDER_USER;
}
