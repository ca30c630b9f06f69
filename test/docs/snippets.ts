/**
 * Turns the docs' code blocks into virtual modules (block + context), type-checks them, and maps
 * every diagnostic back to the file and line the reader sees. Used by snippets.test.ts.
 *
 * Marker syntax, on the line right before a block (in markdown, or in a JSDoc comment):
 *   <!-- snippet: with express, sessions -->   the block is a fragment: names from these contexts
 *   <!-- snippet: skip: <reason> -->           not checked (the reason is printed by the test)
 *   <!-- snippet: module: @/lib/sessions -->   other blocks may import this block by that name
 * Directives combine with `;` (`with ...; module: ...`). A line of a block with a
 * `// type error` comment must produce a diagnostic: the docs say it does.
 * A block that augments a module (`declare module 'coatcheck' { ... }`) changes types for every
 * file of its program, so it gets a program of its own.
 */
import { join } from 'node:path';
import ts from 'typescript';
import { augments, checkFiles, compilerOptions, topLevelNames, type VirtualFile } from './check.js';
import { CONTEXTS } from './contexts.js';
import { extractAll, type BadMarker, type Block, type OtherBlock } from './extract.js';

/**
 * Packages whose types add to `Express.Request` globally (express-session's `req.session`,
 * which coatcheck/express's augmentation also defines): blocks importing one are checked
 * together in a second program, so the shared one keeps coatcheck's `req.session`.
 */
const GLOBAL_AUGMENTERS = ['express-session', 'connect-redis'];

/** Types for packages that ship none, as an app would get them from @types. */
const SHIMS = `
declare module 'cookie-signature' {
  const signature: {
    sign(value: string, secret: string): string;
    unsign(value: string, secret: string): string | false;
  };
  export = signature;
}
`;

export interface Snippet {
  block: Block;
  /** `file:line` of the block's first code line. */
  name: string;
  /** Why the block is not checked (from its marker). */
  skip?: string;
  /** Why the block is not checked in the shared program, and the key of the program it gets. */
  isolated?: { reason: string; program: string };
  contexts: string[];
  virtual?: VirtualFile;
  /** Problems found before compiling (unknown context, conflicting contexts). */
  setup: string[];
  /** 0-based block lines that the docs say are a type error. */
  expectedErrors: Set<number>;
  /** Lines of the block (the virtual file's first lines; the rest is context). */
  codeLines: number;
  /** `module:` specifier, if other blocks import this one. */
  module?: string;
}

export interface Outcome {
  snippets: Snippet[];
  others: OtherBlock[];
  badMarkers: BadMarker[];
  /** name → failures (empty: the block compiled as the docs say). */
  failures: Map<string, string[]>;
  /** Option and global diagnostics of the programs. */
  global: string[];
  programs: number;
  milliseconds: number;
}

interface Directives {
  contexts: string[];
  skip?: string;
  module?: string;
}

function directives(block: Block): Directives | string {
  const result: Directives = { contexts: [] };
  if (!block.marker) return result;
  const skip = /^skip:\s*(\S.*)$/.exec(block.marker.text);
  if (skip) return { contexts: [], skip: skip[1] as string };
  for (const part of block.marker.text.split(';').map((s) => s.trim()).filter(Boolean)) {
    const uses = /^with\s+(\S.*)$/.exec(part);
    const named = /^module:\s*(\S+)$/.exec(part);
    if (uses) result.contexts.push(...(uses[1] as string).split(',').map((s) => s.trim()).filter(Boolean));
    else if (named) result.module = named[1];
    else return `marker at line ${block.marker.line}: cannot read "${part}" (expected "with <context>, ...", "module: <specifier>" or "skip: <reason>")`;
  }
  return result;
}

/** Identifiers the code refers to (not property names after a dot or before a colon). */
function referencedNames(code: string): Set<string> {
  const source = ts.createSourceFile('block.ts', code, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const names = new Set<string>();
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node)) {
      const parent = node.parent;
      const isMemberName =
        (ts.isPropertyAccessExpression(parent) && parent.name === node) ||
        (ts.isQualifiedName(parent) && parent.right === node);
      // The name being declared (a parameter, a variable, a property key), not a use of it.
      const isDeclaredName =
        (ts.isParameter(parent) || ts.isVariableDeclaration(parent) || ts.isBindingElement(parent) ||
          ts.isFunctionDeclaration(parent) || ts.isClassDeclaration(parent) || ts.isInterfaceDeclaration(parent) ||
          ts.isTypeAliasDeclaration(parent) || ts.isTypeParameterDeclaration(parent) || ts.isPropertyAssignment(parent) ||
          ts.isPropertySignature(parent) || ts.isPropertyDeclaration(parent) || ts.isMethodDeclaration(parent) ||
          ts.isMethodSignature(parent)) &&
        parent.name === node;
      if (!isMemberName && !isDeclaredName) names.add(node.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return names;
}

/** The block's code wrapped, from its first statement that is not an import, in an async function. */
function asHandlerBody(code: string): string | undefined {
  const source = ts.createSourceFile('block.ts', code, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const first = source.statements.find((statement) => !ts.isImportDeclaration(statement));
  if (!first) return undefined;
  const lateImport = source.statements.slice(source.statements.indexOf(first)).some(ts.isImportDeclaration);
  if (lateImport) return undefined;
  const lineStart = source.getLineStarts()[source.getLineAndCharacterOfPosition(first.getStart()).line] as number;
  // Same line as the first statement: line numbers do not move.
  return `${code.slice(0, lineStart)}async function __handler() { ${code.slice(lineStart)}\n}`;
}

function importedModules(code: string): string[] {
  const source = ts.createSourceFile('block.ts', code, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  return source.statements.flatMap((statement) =>
    ts.isImportDeclaration(statement) && ts.isStringLiteral(statement.moduleSpecifier) ? [statement.moduleSpecifier.text] : [],
  );
}

/** A block made ready to check: its marker read, its context added, its virtual file named. */
export function toSnippet(root: string, block: Block): Snippet {
  const name = `${block.file}:${block.line}`;
  const codeLines = block.code.split('\n').length;
  const expectedErrors = new Set<number>();
  block.code.split('\n').forEach((line, n) => {
    if (/\/\/\s*type error\b/.test(line)) expectedErrors.add(n);
  });
  const snippet: Snippet = { block, name, contexts: [], setup: [], expectedErrors, codeLines };
  const parsed = directives(block);
  if (typeof parsed === 'string') {
    snippet.setup.push(parsed);
    return snippet;
  }
  if (parsed.skip !== undefined) {
    snippet.skip = parsed.skip;
    return snippet;
  }
  snippet.contexts = parsed.contexts;
  snippet.module = parsed.module;

  let code = block.code;
  const declared = topLevelNames(code);
  const referenced = referencedNames(code);
  const declarations = new Map<string, { line: string; from: string }>();
  for (const contextName of parsed.contexts) {
    const context = CONTEXTS[contextName];
    if (!context) {
      snippet.setup.push(`unknown context "${contextName}" (known: ${Object.keys(CONTEXTS).join(', ')})`);
      continue;
    }
    if (context.handlerBody) {
      const wrapped = asHandlerBody(code);
      if (wrapped === undefined) snippet.setup.push('context "handler": the block needs its imports first and at least one other statement');
      else code = wrapped;
    }
    for (const [binding, line] of Object.entries(context.names ?? {})) {
      if (!referenced.has(binding) || declared.has(binding)) continue;
      const earlier = declarations.get(binding);
      if (earlier && earlier.line !== line) snippet.setup.push(`contexts "${earlier.from}" and "${contextName}" both provide ${binding}: list one`);
      else declarations.set(binding, { line, from: contextName });
    }
  }
  const contextCode = [...declarations.values()].map((d) => d.line);
  const modules = [...importedModules(block.code), ...contextCode.flatMap(importedModules)];
  const augmenter = modules.find((module) => GLOBAL_AUGMENTERS.includes(module));
  if (augments(block.code)) snippet.isolated = { reason: 'augments a module for the whole program', program: name };
  else if (augmenter) {
    snippet.isolated = {
      reason: `imports ${augmenter}, whose types redefine Express's req.session for the whole program`,
      program: 'express-session',
    };
  }
  const slug = block.file.replace(/[^A-Za-z0-9]+/g, '_');
  snippet.virtual = {
    path: join(root, 'test', 'docs', `__snippet__${slug}_L${block.line}.ts`),
    text: `${code}\n${contextCode.join('\n')}\nexport {};\n`,
  };
  return snippet;
}

export function prepare(root: string): Pick<Outcome, 'snippets' | 'others' | 'badMarkers'> {
  const { blocks, others, badMarkers } = extractAll(root);
  return { snippets: blocks.map((block) => toSnippet(root, block)), others, badMarkers };
}

function failuresOf(snippet: Snippet, problems: readonly { line: number; code: number; message: string }[]): string[] {
  const failures = [...snippet.setup];
  const contextLines = snippet.virtual ? snippet.virtual.text.split('\n') : [];
  const hit = new Set<number>();
  for (const problem of problems) {
    const text = `TS${problem.code}: ${problem.message.replace(/\n/g, '\n    ')}`;
    if (problem.line < 0) failures.push(`${snippet.block.file}:${snippet.block.line} ${text}`);
    else if (problem.line < snippet.codeLines) {
      if (snippet.expectedErrors.has(problem.line)) hit.add(problem.line);
      else failures.push(`${snippet.block.file}:${snippet.block.line + problem.line} ${text}`);
    } else {
      failures.push(`${snippet.block.file}:${snippet.block.line} in the context declaration \`${contextLines[problem.line]}\`: ${text}`);
    }
  }
  for (const line of snippet.expectedErrors) {
    if (!hit.has(line)) failures.push(`${snippet.block.file}:${snippet.block.line + line} says "type error", but it compiles`);
  }
  return failures;
}

export function run(root: string, prepared = prepare(root)): Outcome {
  const started = performance.now();
  const options = compilerOptions(root);
  const shim: VirtualFile = { path: join(root, 'test', 'docs', '__snippet_shims__.d.ts'), text: SHIMS };
  const checked = prepared.snippets.filter((s) => s.virtual && s.setup.length === 0);
  for (const snippet of checked) {
    if (snippet.module) options.paths = { ...options.paths, [snippet.module]: [(snippet.virtual as VirtualFile).path] };
  }
  const shared = checked.filter((s) => !s.isolated);
  const failures = new Map<string, string[]>();
  for (const snippet of prepared.snippets) failures.set(snippet.name, [...snippet.setup]);

  const main = checkFiles(options, [shim, ...shared.map((s) => s.virtual as VirtualFile)]);
  const global = [...main.global];
  for (const snippet of shared) failures.set(snippet.name, failuresOf(snippet, main.problems.get((snippet.virtual as VirtualFile).path) ?? []));
  // In an app, some other file imports coatcheck: an augmentation of it needs the module loaded.
  const app: VirtualFile = { path: join(root, 'test', 'docs', '__snippet_app__.ts'), text: "export type { Sessions } from 'coatcheck';\n" };
  const groups = new Map<string, Snippet[]>();
  for (const snippet of checked) {
    if (snippet.isolated) groups.set(snippet.isolated.program, [...(groups.get(snippet.isolated.program) ?? []), snippet]);
  }
  for (const group of groups.values()) {
    const own = checkFiles(options, [shim, app, ...group.map((s) => s.virtual as VirtualFile)], main.program);
    global.push(...own.global);
    for (const snippet of group) failures.set(snippet.name, failuresOf(snippet, own.problems.get((snippet.virtual as VirtualFile).path) ?? []));
  }
  return { ...prepared, failures, global, programs: 1 + groups.size, milliseconds: performance.now() - started };
}
