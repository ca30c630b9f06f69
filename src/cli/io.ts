/**
 * The streams and environment a CLI run uses, passed in rather than read from `process` so a
 * run can be driven in-process (tests) exactly like a real one.
 */

/** A writable text stream; `isTTY` decides progress output and confirmation prompts. */
export interface OutStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface CliIo {
  stdout: OutStream;
  stderr: OutStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: Readonly<Record<string, string | undefined>>;
}

/** The real process's streams and environment. */
export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}
