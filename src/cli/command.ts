/**
 * What a command is, the options every command shares, and the one way commands reach a store
 * (opened, wrapped in the engine for its operations, always closed).
 */
import { createSessions, type Sessions } from '../core/sessions.js';
import type { OptionSpecs, OptionValues } from './args.js';
import { CliError, type ExitCode } from './exit.js';
import type { CliIo } from './io.js';
import { postgresCaseVariants } from './schema-state.js';
import { DEFAULT_TABLE, type CliStore, type StoreTarget } from './store-url.js';

export interface CommandContext {
  io: CliIo;
  values: OptionValues;
  /** `--json`: exactly one JSON document on stdout, nothing else there. */
  json: boolean;
  /** The store named by `--store`, `COATCHECK_STORE` or the default (parsed on first use). */
  target(): StoreTarget;
  openStore(target: StoreTarget, options: { create: boolean }): Promise<CliStore>;
}

export interface Command {
  name: string;
  /** One line for `coatcheck --help`. */
  summary: string;
  /** Synopsis lines, without the leading `coatcheck `. */
  usage: string[];
  /** Paragraph lines for `--help`. */
  description: string[];
  options: OptionSpecs;
  examples: string[];
  /** Resolves to the exit status (default 0); throws UsageError / CliError / store errors. */
  run(context: CommandContext): Promise<ExitCode | void>;
}

/** Options every command takes. */
export const COMMON_OPTIONS: OptionSpecs = {
  json: { type: 'boolean', description: 'print one JSON document on stdout (for scripts)' },
  debug: { type: 'boolean', description: 'print stack traces on errors' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

/** `--store`, for commands that use a store. */
export const STORE_OPTIONS: OptionSpecs = {
  store: {
    type: 'string',
    value: 'URL',
    description: 'sqlite:PATH, postgres://… or redis://… (default: $COATCHECK_STORE, else sqlite:./data/sessions.db)',
  },
};

/**
 * Backstop for one whole store operation. Each driver already bounds every query and connection
 * attempt (5 s by default), so this only ends an operation that keeps making progress for too
 * long, e.g. deleting millions of rows in batches; it is generous on purpose.
 */
export const STORE_TIMEOUT_MS = 600_000;

/**
 * Opens the context's store, runs `work` with it and an engine over it, and closes the store
 * whatever happens (a close failure only surfaces when the work itself succeeded).
 */
export async function withStore<R>(
  context: CommandContext,
  options: { create?: boolean },
  work: (store: CliStore, sessions: Sessions, target: StoreTarget) => Promise<R>,
): Promise<R> {
  const target = context.target();
  const store = await context.openStore(target, { create: options.create ?? false });
  let result: R;
  try {
    // No background sweeps: the CLI does exactly what it was asked.
    const sessions = createSessions({ store, storeTimeout: STORE_TIMEOUT_MS, cleanupProbability: 0 });
    // Heard here, so no stderr warning: the failure is the command's error, reported once by it.
    sessions.events.on('storeError', () => {});
    result = await work(store, sessions, target);
  } catch (error) {
    await store.close().catch(() => {}); // the work's error is the one to report
    throw (await caseMismatch(target, error)) ?? error;
  }
  await store.close();
  return result;
}

/** PostgreSQL's "no such table" (42P01) or "no such schema" (3F000), anywhere in the cause chain. */
function missingNameCode(error: unknown): '42P01' | '3F000' | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === '42P01' || code === '3F000') return code;
  }
  return undefined;
}

/**
 * A missing PostgreSQL table or schema whose name exists in another letter case: a clearer error
 * than "does not exist (run coatcheck migrate)", which would create a second, empty table. Null
 * for anything else, or when the look itself fails.
 */
async function caseMismatch(target: StoreTarget, error: unknown): Promise<CliError | null> {
  const code = missingNameCode(error);
  if (target.kind !== 'postgres' || code === undefined) return null;
  const table = target.table ?? DEFAULT_TABLE;
  const variants = await postgresCaseVariants(target.location, target.schema, table).catch(() => []);
  if (variants.length === 0) return null;
  const named = target.schema ? `${target.schema}.${table}` : table;
  // Where the schema is spelled right, migrate would go ahead and create the wrong table.
  const creatable = code === '42P01' && (target.schema === undefined || variants.some((v) => v.startsWith(`${target.schema}.`)));
  return new CliError(
    `no table ${named}, but there is ${variants.join(', ')}: coatcheck quotes PostgreSQL names, so letter case matters; check ?table= and ?schema=` +
      (creatable ? ` (migrate would create ${named} as a separate, empty table)` : ''),
    { cause: error },
  );
}
