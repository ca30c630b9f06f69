/**
 * Runs the real CLI as a child process (`node --import tsx src/cli/main.ts …`), as an operator or
 * a script would, and collects its exit status and output. `inTerminal` runs it under a
 * pseudo-terminal (util-linux `script`) for the TTY-only behaviour: prompts and progress.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
// Resolved here so the child finds tsx whatever its working directory.
const TSX = import.meta.resolve('tsx');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Extra environment; COATCHECK_STORE is removed from the inherited one unless given here. */
  env?: Record<string, string>;
  cwd?: string;
  input?: string;
}

function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (!('COATCHECK_STORE' in extra)) delete env.COATCHECK_STORE;
  return env;
}

/** `coatcheck …args` with stdin, stdout and stderr as pipes (never a terminal). */
export function cli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      ['--import', TSX, MAIN, ...args],
      { cwd: options.cwd ?? ROOT, env: childEnv(options.env), timeout: 60_000, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const status = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        if (error && status === null) reject(error);
        else resolve({ status, stdout, stderr });
      },
    );
    child.stdin?.end(options.input ?? '');
  });
}

/** Parses stdout as the one JSON document `--json` promises. */
export function json<T = unknown>(result: CliResult): T {
  return JSON.parse(result.stdout) as T;
}

/** Whether util-linux `script` is there to provide a pseudo-terminal. */
export const terminalAvailable = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
// CI installs util-linux's `script` (.ci/run); there a missing tool is a failure, never a skip.
if (!terminalAvailable && process.env.CI === 'true') throw new Error('util-linux `script` is required for the terminal tests (CI=true)');

const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;

/**
 * `coatcheck …args` on a pseudo-terminal: stdin, stdout and stderr are all the terminal, so the
 * output is both streams together (with \r\n line ends) and `input` is what the user types.
 */
export function inTerminal(args: readonly string[], input = ''): Promise<{ status: number | null; output: string }> {
  const command = [process.execPath, '--import', TSX, MAIN, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    const child = execFile('script', ['-qec', command, '/dev/null'], { cwd: ROOT, env: childEnv(), timeout: 60_000, encoding: 'utf8' }, (error, stdout) => {
      const status = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      if (error && status === null) reject(error);
      else resolve({ status, output: stdout });
    });
    child.stdin?.end(input);
  });
}

/**
 * `coatcheck …args` whose stdout reader goes away before the command writes anything, like
 * `coatcheck list … | head -1` once head has its line: every write to stdout fails with EPIPE.
 */
export function cliWithClosedStdout(args: readonly string[], options: CliOptions = {}): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, MAIN, ...args], {
      cwd: options.cwd ?? ROOT,
      env: childEnv(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    // Closed at once: the child is still starting, so its first write finds no reader.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stderr }));
  });
}
