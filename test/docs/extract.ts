/**
 * Finds the TypeScript examples in the docs: ```ts / ```typescript fences in README.md and
 * docs/**\/*.md, and in the JSDoc comments of src/**\/*.ts (fenced blocks, and `@example` tags
 * whose body is bare code). Also picks up the `<!-- snippet: ... -->` marker written right before
 * a block (blank lines between are allowed; its syntax is in snippets.ts), and reports a marker
 * that stands before anything else.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface Marker {
  /** What follows `snippet:` (parsed by snippets.ts). */
  text: string;
  /** 1-based line of the marker. */
  line: number;
}

export interface Block {
  /** Path relative to the repository root, e.g. `docs/adapters.md`. */
  file: string;
  /** 1-based line in `file` of the block's first code line (the line after the fence). */
  line: number;
  /** The code, fence and JSDoc ` * ` prefixes removed. */
  code: string;
  source: 'markdown' | 'jsdoc';
  marker?: Marker;
}

/** A fenced block that is not TypeScript (shell, console output, SQL, JSON, unlabelled). */
export interface OtherBlock {
  file: string;
  line: number;
  language: string;
}

/** A marker that precedes no TypeScript block, or that does not parse: always an error. */
export interface BadMarker {
  file: string;
  line: number;
  problem: string;
}

export interface Extracted {
  blocks: Block[];
  others: OtherBlock[];
  badMarkers: BadMarker[];
}

const TS_LANGUAGES = new Set(['ts', 'typescript']);
const MARKER = /^<!--\s*snippet:\s*(.*?)\s*-->$/;
const FENCE = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/;

function parseMarker(text: string, line: number): Marker | string {
  const body = MARKER.exec(text)?.[1];
  return body === undefined ? 'not of the form <!-- snippet: ... -->' : { text: body, line };
}

/**
 * Splits documentation text (markdown, or a JSDoc comment with its ` * ` prefixes removed) into
 * fenced blocks. `firstLine` is the 1-based file line of `lines[0]`.
 */
function scanFences(file: string, lines: readonly string[], firstLine: number, source: Block['source'], out: Extracted): void {
  let pending: { marker: Marker | string; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const text = (lines[i] as string).trim();
    if (/^<!--\s*snippet:/.test(text)) {
      if (pending) out.badMarkers.push({ file, line: pending.line, problem: 'followed by another marker, not by a block' });
      pending = { marker: parseMarker(text, firstLine + i), line: firstLine + i };
      continue;
    }
    const fence = FENCE.exec(lines[i] as string);
    if (!fence) {
      if (text !== '' && pending) {
        out.badMarkers.push({ file, line: pending.line, problem: 'not directly followed by a fenced block' });
        pending = undefined;
      }
      continue;
    }
    const [, indent = '', ticks = '', info = ''] = fence;
    const start = i + 1;
    let end = start;
    const closing = new RegExp(`^\\s*${ticks[0] === '`' ? '`' : '~'}{${ticks.length},}\\s*$`);
    while (end < lines.length && !closing.test(lines[end] as string)) end++;
    const language = info.toLowerCase();
    if (TS_LANGUAGES.has(language)) {
      const code = lines
        .slice(start, end)
        .map((line) => (line.startsWith(indent) ? line.slice(indent.length) : line.trimStart()))
        .join('\n');
      const block: Block = { file, line: firstLine + start, code, source };
      if (pending) {
        if (typeof pending.marker === 'string') out.badMarkers.push({ file, line: pending.line, problem: pending.marker });
        else block.marker = pending.marker;
      }
      out.blocks.push(block);
    } else {
      out.others.push({ file, line: firstLine + start, language: language || '(unlabelled)' });
      if (pending) out.badMarkers.push({ file, line: pending.line, problem: `precedes a ${language || 'unlabelled'} block, not a TypeScript one` });
    }
    pending = undefined;
    i = end;
  }
  if (pending) out.badMarkers.push({ file, line: pending.line, problem: 'not followed by a block' });
}

function walk(dir: string, suffix: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => (entry.isDirectory() ? walk(join(dir, entry.name), suffix) : entry.name.endsWith(suffix) ? [join(dir, entry.name)] : []))
    .sort();
}

/** The ```ts blocks of README.md and docs/**\/*.md. */
export function markdownBlocks(root: string, out: Extracted): void {
  for (const path of [join(root, 'README.md'), ...walk(join(root, 'docs'), '.md')]) {
    markdownText(relative(root, path), readFileSync(path, 'utf8'), out);
  }
}

/** The fenced blocks of one markdown text. */
export function markdownText(file: string, text: string, out: Extracted): void {
  scanFences(file, text.split('\n'), 1, 'markdown', out);
}

/**
 * The TypeScript in src/'s JSDoc comments: every ```ts fence, and the body of an `@example` tag
 * that holds bare code (no fence), which TSDoc also reads as code.
 */
export function jsdocBlocks(root: string, out: Extracted): void {
  for (const path of walk(join(root, 'src'), '.ts')) jsdocText(relative(root, path), readFileSync(path, 'utf8'), out);
}

/** The TypeScript in the JSDoc comments of one source text. */
export function jsdocText(file: string, text: string, out: Extracted): void {
  for (const comment of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const firstLine = text.slice(0, comment.index).split('\n').length;
    // ` * text` → `text`; the opening `/**` and closing `*/` become empty lines (line numbers stay).
    const lines = comment[0]
      .split('\n')
      .map((line, n, all) => {
        let stripped = line;
        if (n === 0) stripped = stripped.replace(/^\s*\/\*\*\s?/, '');
        if (n === all.length - 1) stripped = stripped.replace(/\s*\*\/\s*$/, '');
        return n === 0 ? stripped : stripped.replace(/^\s*\*(?: |$)/, '');
      });
    scanFences(file, lines, firstLine, 'jsdoc', out);
    bareExamples(file, lines, firstLine, out);
  }
}

/** `@example` followed by code without a fence: the code runs to the next tag or the comment's end. */
function bareExamples(file: string, lines: readonly string[], firstLine: number, out: Extracted): void {
  for (let i = 0; i < lines.length; i++) {
    const tag = /^\s*@example\b\s*(.*)$/.exec(lines[i] as string);
    if (!tag) continue;
    let start = i + 1;
    while (start < lines.length && (lines[start] as string).trim() === '') start++;
    if (start < lines.length && FENCE.test(lines[start] as string)) continue; // fenced: scanFences has it
    if (start < lines.length && /^\s*<!--\s*snippet:/.test(lines[start] as string)) continue; // marker + fence
    let end = start;
    while (end < lines.length && !/^\s*@\w/.test(lines[end] as string)) end++;
    const body = lines.slice(start, end);
    while (body.length > 0 && (body[body.length - 1] as string).trim() === '') body.pop();
    if ((tag[1] as string).trim() !== '') {
      out.badMarkers.push({ file, line: firstLine + i, problem: '@example with text on the tag line: put the code on the lines below' });
      continue;
    }
    if (body.length === 0) continue;
    out.blocks.push({ file, line: firstLine + start, code: body.join('\n'), source: 'jsdoc' });
  }
}

export function extractAll(root: string): Extracted {
  const out: Extracted = { blocks: [], others: [], badMarkers: [] };
  markdownBlocks(root, out);
  jsdocBlocks(root, out);
  return out;
}
