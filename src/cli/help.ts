/** `--help` text for the CLI and each command. */
import type { OptionSpec } from './args.js';
import type { Command } from './command.js';

function optionLabel(name: string, spec: OptionSpec): string {
  const long = `--${name}${spec.value ? ` ${spec.value}` : ''}`;
  return spec.short ? `-${spec.short}, ${long}` : `    ${long}`;
}

function columns(rows: Array<[string, string]>, indent = '  '): string[] {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `${indent}${left.padEnd(width)}  ${right}`);
}

/** Help for one command: synopsis, description, options, examples. */
export function commandHelp(command: Command): string {
  const lines = [
    `coatcheck ${command.name}: ${command.summary}`,
    '',
    'Usage:',
    ...command.usage.map((line) => `  coatcheck ${line}`),
    '',
    ...command.description,
    '',
    'Options:',
    ...columns(Object.entries(command.options).map(([name, spec]) => [optionLabel(name, spec), spec.description])),
  ];
  if (command.examples.length > 0) lines.push('', 'Examples:', ...command.examples.map((line) => `  ${line}`));
  return `${lines.join('\n')}\n`;
}

/** Help for `coatcheck` itself. */
export function mainHelp(commands: readonly Command[]): string {
  return `${[
    'coatcheck: operate the session store of a coatcheck app',
    '',
    'Usage:',
    '  coatcheck <command> [options]',
    '  coatcheck <command> --help',
    '  coatcheck --version',
    '',
    'Commands:',
    ...columns(commands.map((c) => [c.name, c.summary])),
    '',
    'The store is chosen by --store URL, else $COATCHECK_STORE, else sqlite:./data/sessions.db:',
    '  sqlite:PATH[?table=NAME]',
    '  postgres://USER@HOST:PORT/DB[?table=NAME&schema=NAME]',
    '  redis://HOST:PORT[/DB][?prefix=PREFIX]',
    '',
    'Every command takes --json (one JSON document on stdout), --debug (stack traces) and --help.',
    'Exit status: 0 done, 1 failed (store unreachable, confirmation declined), 2 usage error.',
  ].join('\n')}\n`;
}
