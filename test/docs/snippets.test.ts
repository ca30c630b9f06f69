/**
 * Type-checks the TypeScript examples of README.md, docs/**\/*.md and src/'s JSDoc against the
 * library's source, in one TypeScript program (plus separate ones for blocks that change types for
 * every file: one per module augmentation, one for all blocks importing express-session's types).
 * A fragment names the context it
 * needs in a marker right before it (`<!-- snippet: with express, sessions -->`, see
 * contexts.ts); a block that is not checked says why (`<!-- snippet: skip: reason -->`), and the
 * reason is printed as the test's skip message. Markers are documented in snippets.ts.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { CONTEXTS } from './contexts.js';
import { jsdocText, markdownText, type Block, type Extracted } from './extract.js';
import { prepare, run, toSnippet, type Outcome } from './snippets.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const prepared = prepare(root);

/** Blocks that must fail, checked in the same program: proof that a wrong example is caught. */
const canary = (line: number, code: string, marker?: string): Block => ({
  file: 'test/docs/(canary)',
  line,
  code,
  source: 'markdown',
  marker: marker === undefined ? undefined : { text: marker, line: line - 2 },
});
const canaries = [
  toSnippet(root, canary(1, "import { createSessions } from 'coatcheck';\nimport { memoryStore } from 'coatcheck/stores/memory';\ncreateSessions({ store: memoryStore(), secret: 'x' });")),
  toSnippet(root, canary(11, "app.use((req) => req.session.load());")),
  toSnippet(root, canary(21, "const n: number = 1; // type error")),
  toSnippet(root, canary(31, "app.listen(3000);", 'with express, nonsense')),
];
/** One block per context, compiling only if none of its names is typed `any` (which would let any example pass). */
const contextProbes = Object.entries(CONTEXTS)
  .filter(([, context]) => context.names)
  .map(([name, context]) => {
    const bindings = Object.keys(context.names ?? {});
    const block: Block = {
      file: `test/docs/(context ${name})`,
      line: 1,
      code: bindings.map((binding, n) => `const probe${n}: 0 extends 1 & typeof ${binding} ? never : true = true;`).join('\n'),
      source: 'markdown',
      marker: { text: `with ${name}`, line: 0 },
    };
    return toSnippet(root, block);
  });

function describeSnippet(name: string): string {
  const snippet = prepared.snippets.find((s) => s.name === name);
  if (!snippet) return name;
  const parts = [name];
  if (snippet.contexts.length > 0) parts.push(`with ${snippet.contexts.join(', ')}`);
  if (snippet.isolated) parts.push(`separate program: ${snippet.isolated.reason}`);
  return parts.join(' — ');
}

describe('docs: TypeScript examples compile against src/', () => {
  let outcome: Outcome;
  before(() => {
    outcome = run(root, { ...prepared, snippets: [...prepared.snippets, ...canaries, ...contextProbes] });
    const skipped = prepared.snippets.filter((s) => s.skip !== undefined);
    const byLanguage = new Map<string, number>();
    for (const other of prepared.others) byLanguage.set(other.language, (byLanguage.get(other.language) ?? 0) + 1);
    console.log(
      [
        `${prepared.snippets.length - skipped.length} blocks checked, ${skipped.length} skipped, in ${outcome.programs} programs, ${Math.round(outcome.milliseconds)} ms`,
        ...skipped.map((s) => `  skipped ${s.name}: ${s.skip}`),
        `not TypeScript, not checked: ${[...byLanguage].map(([language, n]) => `${n} ${language}`).join(', ')}`,
      ].join('\n'),
    );
  });

  it('finds examples in README.md, docs/ and src/ JSDoc', () => {
    const files = new Set(prepared.snippets.map((s) => s.block.file));
    assert.ok(files.has('README.md'), 'no block in README.md');
    assert.ok([...files].some((f) => f.startsWith('docs/')), 'no block in docs/');
    assert.ok(prepared.snippets.some((s) => s.block.source === 'jsdoc'), 'no JSDoc block in src/');
  });

  it('every snippet marker is well-formed and stands right before a TypeScript block', () => {
    assert.deepEqual(prepared.badMarkers.map((m) => `${m.file}:${m.line} ${m.problem}`), []);
  });

  it('the compiler options and global declarations are sound', () => {
    assert.deepEqual(outcome.global, []);
  });

  it('catches wrong examples (canaries)', () => {
    const failures = canaries.map((c) => (outcome.failures.get(c.name) ?? []).join('\n'));
    assert.match(failures[0] as string, /^test\/docs\/\(canary\):3 TS2353: .*'secret' does not exist/m);
    assert.match(failures[1] as string, /^test\/docs\/\(canary\):11 TS2304: Cannot find name 'app'/m);
    assert.match(failures[2] as string, /^test\/docs\/\(canary\):21 says "type error", but it compiles/m);
    assert.match(failures[3] as string, /unknown context "nonsense"/);
  });

  it('gives every context name a real type, not any', () => {
    const failures = contextProbes.flatMap((probe) => outcome.failures.get(probe.name) ?? ['not checked']);
    assert.deepEqual(failures, []);
  });

  for (const snippet of prepared.snippets) {
    const skip = snippet.skip === undefined ? false : `not checked: ${snippet.skip}`;
    it(describeSnippet(snippet.name), { skip }, () => {
      const failures = outcome.failures.get(snippet.name);
      assert.ok(failures, `${snippet.name} was not checked`);
      if (failures.length === 0) return;
      const contexts = snippet.contexts.map((name) => `  ${name}: ${CONTEXTS[name]?.about ?? '(unknown)'}`);
      assert.fail(
        [
          `${snippet.name}: the example does not compile against src/:`,
          ...failures.map((f) => `  ${f}`),
          contexts.length > 0 ? `its contexts:\n${contexts.join('\n')}` : 'it has no context: a fragment names one in <!-- snippet: with ... --> right before it (see test/docs/contexts.ts)',
        ].join('\n'),
      );
    });
  }
});

describe('docs: finding the examples', () => {
  const empty = (): Extracted => ({ blocks: [], others: [], badMarkers: [] });

  it('reads markdown fences, indented ones too, with their markers and first code lines', () => {
    const out = empty();
    const text = [
      'Some prose.', // 1
      '<!-- snippet: with node -->', // 2
      '```ts', // 3
      'const a = 1;', // 4
      '```', // 5
      '- a list item:', // 6
      '  ```typescript', // 7
      '    const b = 2;', // 8
      '  ```', // 9
      '<!-- snippet: with node -->', // 10
      'prose between', // 11
      '```sh', // 12
      'npm test', // 13
      '```', // 14
      '<!-- snippet: skip: output -->', // 15
      '```json', // 16
      '{}', // 17
      '```', // 18
      '```', // 19
      'plain', // 20
      '```', // 21
    ].join('\n');
    markdownText('x.md', text, out);
    assert.deepEqual(out.blocks.map((b) => [b.line, b.code, b.marker?.text]), [[4, 'const a = 1;', 'with node'], [8, '  const b = 2;', undefined]]);
    assert.deepEqual(out.others.map((o) => [o.line, o.language]), [[13, 'sh'], [17, 'json'], [20, '(unlabelled)']]);
    assert.deepEqual(out.badMarkers.map((m) => [m.line, m.problem]), [
      [10, 'not directly followed by a fenced block'],
      [15, 'precedes a json block, not a TypeScript one'],
    ]);
  });

  it('reads JSDoc fences and bare @example code, without the comment prefix, at their file lines', () => {
    const out = empty();
    const text = [
      'const x = 1;', // 1
      '/**', // 2
      ' * Does things.', // 3
      ' * <!-- snippet: with sessions -->', // 4
      ' * ```ts', // 5
      ' * if (x) {', // 6
      ' *   go();', // 7
      ' * }', // 8
      ' * ```', // 9
      ' * @example', // 10
      ' * run(1);', // 11
      ' * @returns nothing', // 12
      ' */', // 13
    ].join('\n');
    jsdocText('src/x.ts', text, out);
    assert.deepEqual(out.blocks.map((b) => [b.line, b.code, b.marker?.text]), [
      [6, 'if (x) {\n  go();\n}', 'with sessions'],
      [11, 'run(1);', undefined],
    ]);
    assert.deepEqual(out.badMarkers, []);
  });
});
