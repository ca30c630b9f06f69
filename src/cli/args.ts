/**
 * Command-line parsing on top of `node:util` `parseArgs`, with the CLI's rules: no positionals,
 * no option given twice (`--user a --user b` must not quietly mean b), and one-line messages.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './exit.js';

/** One option of a command, as parsed and as shown in `--help`. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Placeholder for the value in help, e.g. `ID`. */
  value?: string;
  description: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;
export type OptionValues = Record<string, string | boolean | undefined>;

/** First line of a `parseArgs` error, reworded where Node's text is long or unclear. */
function usageMessage(error: { code?: string; message: string }): string {
  const option = /'(-{1,2}[^' ]+)/.exec(error.message)?.[1];
  if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${option ?? error.message}`;
  if (error.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    return `unexpected argument ${/'([^']*)'/.exec(error.message)?.[1] ?? ''} (this command takes options only)`;
  }
  if (error.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    if (error.message.includes('does not take an argument')) return `option ${option} does not take a value`;
    return `option ${option} needs a value (write ${option}=VALUE if the value starts with -)`;
  }
  return (error.message.split('\n')[0] ?? error.message).replace(/^./, (c) => c.toLowerCase());
}

/** Parses `argv` against `specs`; throws {@link UsageError} on anything unexpected. */
export function parseOptions(argv: readonly string[], specs: OptionSpecs): OptionValues {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, spec] of Object.entries(specs)) options[name] = spec.short ? { type: spec.type, short: spec.short } : { type: spec.type };
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false, tokens: true });
  } catch (error) {
    const e = error as { code?: string; message: string };
    if (typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS')) throw new UsageError(usageMessage(e));
    throw error;
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== 'option') continue;
    if (seen.has(token.name)) throw new UsageError(`option --${token.name} given more than once`);
    seen.add(token.name);
  }
  return parsed.values as OptionValues;
}

/** An integer option's value, within bounds, or `fallback` when the option is absent. */
export function integerOption(values: OptionValues, name: string, bounds: { min: number; max: number }, fallback: number): number;
export function integerOption(values: OptionValues, name: string, bounds: { min: number; max: number }): number | undefined;
export function integerOption(values: OptionValues, name: string, bounds: { min: number; max: number }, fallback?: number): number | undefined {
  const text = values[name];
  if (text === undefined) return fallback;
  const value = typeof text === 'string' && /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < bounds.min || value > bounds.max) {
    throw new UsageError(`--${name} must be an integer from ${bounds.min} to ${bounds.max}, got ${JSON.stringify(text)}`);
  }
  return value;
}
