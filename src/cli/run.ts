/**
 * The CLI's dispatcher: picks the command, parses its options, runs it, and turns every outcome
 * into an exit status and at most one line on stderr (stack traces only with --debug).
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { parseOptions } from './args.js';
import type { Command, CommandContext } from './command.js';
import { clearExpired } from './commands/clear-expired.js';
import { keygen } from './commands/keygen.js';
import { kill } from './commands/kill.js';
import { list } from './commands/list.js';
import { migrate } from './commands/migrate.js';
import { stats } from './commands/stats.js';
import { CliError, ExitCode, UsageError } from './exit.js';
import { commandHelp, mainHelp } from './help.js';
import type { CliIo } from './io.js';
import { openStore as defaultOpenStore, parseStoreUrl, resolveStoreUrl, type StoreTarget } from './store-url.js';

/** Every command, in the order `--help` lists them. */
export const COMMANDS: readonly Command[] = [clearExpired, kill, list, stats, migrate, keygen];

/** Replaceable parts of a run (tests hand in stores the URL syntax cannot name). */
export interface RunOptions {
  openStore?: CommandContext['openStore'];
}

/** The package's version: package.json sits two levels up from both src/cli and dist/cli. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

/** Text of an error for one line: causes of empty messages and AggregateErrors spelled out. */
function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return [...new Set(error.errors.map(describe))].join('; ');
  if (!(error instanceof Error)) return String(error);
  let text = error.message.replace(/^coatcheck: /, '');
  // StoreError copies its cause's message, which is empty for e.g. pg's AggregateError on connect.
  if (/:\s*$/.test(text) && error.cause !== undefined) text = `${text} ${describe(error.cause)}`;
  return text || String((error as { code?: unknown }).code ?? error.name);
}

/** A hint for failures an operator can fix, found anywhere in the cause chain. */
function hint(error: unknown): string {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    // The CLI's own messages already say what to do; a cause they carry is for --debug.
    if (e instanceof CliError) return '';
    // So do the library's (a missing schema: "create the schema first"): no second hint.
    if (e instanceof ConfigError) return '';
    const code = (e as { code?: unknown }).code;
    if (code === '42P01') return ' (the session table does not exist: run coatcheck migrate)';
    if (code === '3F000') return ' (the schema does not exist: create it first)';
    if (e.name === 'MaxRetriesPerRequestError') return ' (Redis did not answer: is it running at that address?)';
  }
  return '';
}

function stackOf(error: unknown): string {
  const lines: string[] = [];
  for (let e = error, depth = 0; e !== undefined && depth < 5; e = e instanceof Error ? e.cause : undefined, depth++) {
    lines.push(`${depth === 0 ? '' : 'caused by: '}${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  }
  return `${lines.join('\n')}\n`;
}

function closestCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name.startsWith(name) || name.startsWith(c.name) || c.name.replace('-', '') === name.replace(/[-_]/g, ''));
}

/** Runs one command line; resolves to the exit status. Never rejects. */
export async function run(argv: readonly string[], io: CliIo, options: RunOptions = {}): Promise<ExitCode> {
  const debug = argv.includes('--debug');
  const [first, ...rest] = argv;
  let command: Command | undefined;
  try {
    if (first === undefined) {
      io.stderr.write(mainHelp(COMMANDS));
      return ExitCode.usage;
    }
    if (first === '--help' || first === '-h' || (first === 'help' && rest.length === 0)) {
      io.stdout.write(mainHelp(COMMANDS));
      return ExitCode.ok;
    }
    if (first === '--version' || first === '-v') {
      io.stdout.write(`${version()}\n`);
      return ExitCode.ok;
    }
    if (first === 'help') {
      command = COMMANDS.find((c) => c.name === rest[0]);
      if (!command || rest.length > 1) throw new UsageError(`no help for ${JSON.stringify(rest.join(' '))}`); // the usage hint follows
      io.stdout.write(commandHelp(command));
      return ExitCode.ok;
    }
    if (first.startsWith('-')) throw new UsageError(`the command comes first: coatcheck <command> [options] (got ${first})`);
    command = COMMANDS.find((c) => c.name === first);
    if (!command) {
      const near = closestCommand(first);
      throw new UsageError(`unknown command ${JSON.stringify(first)}${near ? ` (did you mean ${near.name}?)` : ''}`);
    }
    const values = parseOptions(rest, command.options);
    if (values.help) {
      io.stdout.write(commandHelp(command));
      return ExitCode.ok;
    }
    let target: StoreTarget | undefined;
    const context: CommandContext = {
      io,
      values,
      json: values.json === true,
      target: () => (target ??= parseStoreUrl(resolveStoreUrl(values.store as string | undefined, io.env))),
      openStore: options.openStore ?? defaultOpenStore,
    };
    return (await command.run(context)) ?? ExitCode.ok;
  } catch (error) {
    const prefix = command ? `coatcheck ${command.name}` : 'coatcheck';
    if (debug) io.stderr.write(stackOf(error));
    if (error instanceof UsageError) {
      io.stderr.write(`${prefix}: ${error.message} (see ${prefix} --help)\n`);
      return ExitCode.usage;
    }
    // One line, whatever the driver's message looked like.
    io.stderr.write(`${prefix}: ${describe(error)}${hint(error)}`.replace(/\s*\n\s*/g, ' ') + '\n');
    return ExitCode.failure;
  }
}
