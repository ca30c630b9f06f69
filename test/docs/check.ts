/**
 * Type-checks code blocks against src/ in one TypeScript program: each block is a virtual module
 * next to this file, `coatcheck` and `coatcheck/*` map to the source files behind package.json's
 * "exports", and everything else (node:*, express, pg, ...) resolves from node_modules.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

export interface VirtualFile {
  /** Absolute path; it does not exist on disk. */
  path: string;
  text: string;
}

export interface Problem {
  /** 0-based line in the virtual file, or -1 for a diagnostic without a position. */
  line: number;
  code: number;
  message: string;
}

/** The repository's compiler options (tsconfig.json), with `paths` for the package's own name. */
export function compilerOptions(root: string): ts.CompilerOptions {
  const config = ts.readConfigFile(join(root, 'tsconfig.json'), ts.sys.readFile);
  if (config.error) throw new Error(ts.flattenDiagnosticMessageText(config.error.messageText, '\n'));
  // Only the options: the file list (`include`) is not needed, and listing it walks the repository.
  const parsed = ts.convertCompilerOptionsFromJson((config.config as { compilerOptions: unknown }).compilerOptions, root);
  if (parsed.errors.length > 0) throw new Error(parsed.errors.map((e) => ts.flattenDiagnosticMessageText(e.messageText, '\n')).join('\n'));
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    name: string;
    exports: Record<string, string | { types: string }>;
  };
  const paths: Record<string, string[]> = {};
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue; // ./package.json
    const source = target.types.replace(/^\.\/dist\//, './src/').replace(/\.d\.ts$/, '.ts');
    paths[pkg.name + subpath.slice(1)] = [source];
  }
  return {
    ...parsed.options,
    paths,
    noEmit: true,
    declaration: false,
    sourceMap: false,
    // Examples declare things to show them (`const store = ...`): unused names are not errors here.
    noUnusedLocals: false,
    noUnusedParameters: false,
  };
}

/** Builds a program over `files` (reusing `old` where possible) and returns each file's diagnostics. */
export function checkFiles(
  options: ts.CompilerOptions,
  files: readonly VirtualFile[],
  old?: ts.Program,
): { program: ts.Program; problems: Map<string, Problem[]>; global: string[] } {
  const byPath = new Map(files.map((file) => [file.path, file.text]));
  const host = ts.createCompilerHost(options, true);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (path) => byPath.has(path) || fileExists.call(host, path);
  host.readFile = (path) => byPath.get(path) ?? readFile.call(host, path);
  host.getSourceFile = (path, language, onError, create) => {
    const text = byPath.get(path);
    if (text !== undefined) return ts.createSourceFile(path, text, language, true);
    // Library and src files do not change between the programs of one run: share them.
    const cached = old?.getSourceFile(path);
    return cached ?? getSourceFile.call(host, path, language, onError, create);
  };
  const program = ts.createProgram({ rootNames: [...byPath.keys()], options, host, oldProgram: old });
  const problems = new Map<string, Problem[]>();
  for (const path of byPath.keys()) {
    const source = program.getSourceFile(path);
    if (!source) throw new Error(`${path} is not in the program`);
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
    problems.set(
      path,
      diagnostics.map((d) => ({
        line: d.start === undefined ? -1 : source.getLineAndCharacterOfPosition(d.start).line,
        code: d.code,
        message: ts.flattenDiagnosticMessageText(d.messageText, '\n'),
      })),
    );
  }
  const global = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()].map((d) =>
    ts.flattenDiagnosticMessageText(d.messageText, '\n'),
  );
  return { program, problems, global };
}

/** Names a module declares at its top level (imports, variables, functions, classes, types). */
export function topLevelNames(code: string): Set<string> {
  const source = ts.createSourceFile('block.ts', code, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const names = new Set<string>();
  const addBinding = (name: ts.BindingName): void => {
    if (ts.isIdentifier(name)) names.add(name.text);
    else for (const element of name.elements) if (!ts.isOmittedExpression(element)) addBinding(element.name);
  };
  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement) && statement.importClause) {
      const clause = statement.importClause;
      if (clause.name) names.add(clause.name.text);
      const bindings = clause.namedBindings;
      if (bindings && ts.isNamespaceImport(bindings)) names.add(bindings.name.text);
      if (bindings && ts.isNamedImports(bindings)) for (const element of bindings.elements) names.add(element.name.text);
    } else if (ts.isImportEqualsDeclaration(statement)) {
      names.add(statement.name.text);
    } else if (ts.isVariableStatement(statement)) {
      for (const declaration of statement.declarationList.declarations) addBinding(declaration.name);
    } else if (
      (ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement) || ts.isInterfaceDeclaration(statement) ||
        ts.isTypeAliasDeclaration(statement) || ts.isEnumDeclaration(statement) || ts.isModuleDeclaration(statement)) &&
      statement.name && ts.isIdentifier(statement.name)
    ) {
      names.add(statement.name.text);
    }
  }
  return names;
}

/**
 * True when the code augments a module or the global scope (`declare module 'x' {}`,
 * `declare global {}`): that changes types for every file of a program, so it gets its own.
 */
export function augments(code: string): boolean {
  const source = ts.createSourceFile('block.ts', code, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  return source.statements.some(
    (statement) =>
      ts.isModuleDeclaration(statement) &&
      (ts.isStringLiteral(statement.name) || (statement.flags & ts.NodeFlags.GlobalAugmentation) !== 0),
  );
}
