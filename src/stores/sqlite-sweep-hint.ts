/**
 * The SQLite store's sweep hint: an indexed `sweep_at` column that trails `expires_at` in coarse
 * steps, so that a save which only slides the expiry forward does not move an index entry.
 *
 * Why: SQLite rewrites an index entry whenever its column is assigned. An index on `expires_at`
 * itself moved on every save (idle expiry slides with each request) and cost about 40 % of a
 * save (two more B-tree pages written to the WAL). `expires_at` stays exact and unindexed; it is
 * what `get` returns and what the engine enforces. `sweep_at` only says where the sweep and
 * `stats` should look.
 *
 * Invariant kept by every write of the store: `expires_at <= sweep_at <= expires_at + slack`,
 * where the slack is at most {@link SWEEP_SLACK_MAX_MS}. Consequences:
 * - `sweep_at <= t` implies expired at `t` (the sweep still checks `expires_at`, so a row written
 *   by other code that breaks the invariant is never deleted early);
 * - a record past its expiry waits at most one slack before a sweep deletes it (it is never
 *   served meanwhile: the engine checks `expires_at`);
 * - `sweep_at > t + SWEEP_SLACK_MAX_MS` implies live at `t`; only rows in between need reading.
 *
 * @module
 */

/** The largest slack: a record outlives its expiry in the table by at most this long. */
export const SWEEP_SLACK_MAX_MS = 15 * 60_000;

/** Slack for a record: an eighth of its remaining lifetime, at most {@link SWEEP_SLACK_MAX_MS}. */
export function sweepSlack(lastSeenAt: number, expiresAt: number): number {
  return Math.min(SWEEP_SLACK_MAX_MS, Math.max(0, Math.floor((expiresAt - lastSeenAt) / 8)));
}

/** The `sweep_at` to write when the current one no longer fits. */
export function sweepHint(lastSeenAt: number, expiresAt: number): number {
  return expiresAt + sweepSlack(lastSeenAt, expiresAt);
}

/** Whether a row's `sweep_at` still fits these times (then a save leaves the index alone). */
export function sweepHintHolds(sweepAt: number, lastSeenAt: number, expiresAt: number): boolean {
  return sweepAt >= expiresAt && sweepAt <= expiresAt + sweepSlack(lastSeenAt, expiresAt);
}

/**
 * One sweep batch: rows whose hint and expiry have both passed, oldest hint first, at most `?`
 * (parameters: before, before, limit). The inner query walks the sweep index, so a batch costs
 * O(limit) however large the table is.
 */
export function sweepBatchSql(quotedTable: string): string {
  return `DELETE FROM ${quotedTable} WHERE rowid IN (SELECT rowid FROM ${quotedTable} WHERE sweep_at <= ? AND expires_at <= ? ORDER BY sweep_at LIMIT ?)`;
}

/**
 * A CTE `live (user_id)` of the rows live at `@now` (`@far` = `@now` + {@link SWEEP_SLACK_MAX_MS}):
 * rows hinted beyond `@far` are live by the invariant and come from the covering
 * `(sweep_at, user_id)` index alone; rows hinted in `(@now, @far]` are judged by their exact
 * expiry, a row read each, for at most one slack's worth of expiries.
 */
export function liveRowsCte(quotedTable: string): string {
  return `live (user_id) AS (
    SELECT user_id FROM ${quotedTable} WHERE sweep_at > @far
    UNION ALL
    SELECT user_id FROM ${quotedTable} WHERE sweep_at > @now AND sweep_at <= @far AND expires_at > @now)`;
}
