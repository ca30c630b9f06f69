/**
 * Exit statuses and the two kinds of failure the CLI reports. Scripts branch on the status, so
 * it is part of the CLI's interface (docs/cli.md).
 */

/** 0: done. 1: the work failed (store down, declined confirmation). 2: the command line was wrong. */
export const ExitCode = { ok: 0, failure: 1, usage: 2 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The command line is wrong: unknown option, missing value, conflicting flags. Exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The work failed in a way the CLI itself detected; the message is written for the operator. Exit 1. */
export class CliError extends Error {
  override readonly name = 'CliError';
}
