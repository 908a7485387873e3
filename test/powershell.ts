/**
 * PowerShell for the tests, without PowerShell: the tree-sitter-powershell grammar (wasm) loaded with
 * web-tree-sitter parses the scripts in src/scripts, so the tests can check their syntax and read their
 * tables (exit codes, error codes, result-line keys) instead of trusting copies of them.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Language, Parser } from 'web-tree-sitter';
import type { Node, Tree } from 'web-tree-sitter';
import { documentScriptText, PRELUDE_SCRIPT } from '../src/documents/build-documents.ts';
import { DOCUMENT_NAMES } from '../src/documents/document-parameters.ts';
import type { DocumentName } from '../src/documents/document-parameters.ts';

export const SCRIPTS_DIR = join(import.meta.dirname, '..', 'src', 'scripts');

export function scriptFiles(): string[] {
  return readdirSync(SCRIPTS_DIR).filter((f) => f.endsWith('.ps1')).sort();
}

export function readScript(file: string): string {
  return readFileSync(join(SCRIPTS_DIR, file), 'utf8');
}

export { PRELUDE_SCRIPT };

/** A document's whole script as SSM runs it: the shared prelude, then the document's own script. */
export function documentScript(name: DocumentName): string {
  return documentScriptText(name);
}

export function documentNames(): DocumentName[] {
  return [...DOCUMENT_NAMES];
}

let parser: Promise<Parser> | undefined;

/** One parser for the whole test file; the wasm loads once (about 50 ms). */
export function powershellParser(): Promise<Parser> {
  parser ??= (async () => {
    await Parser.init();
    const require = createRequire(import.meta.url);
    const language = await Language.load(require.resolve('tree-sitter-powershell/tree-sitter-powershell.wasm'));
    const p = new Parser();
    p.setLanguage(language);
    return p;
  })();
  return parser;
}

export async function parsePowerShell(source: string): Promise<Tree> {
  const tree = (await powershellParser()).parse(source);
  if (!tree) throw new Error('tree-sitter returned no tree');
  return tree;
}

export interface SyntaxProblem {
  line: number;
  column: number;
  problem: string;
}

// Scope and drive qualifiers PowerShell accepts in `$qualifier:name`.
const VARIABLE_QUALIFIERS = new Set(['env', 'script', 'global', 'local', 'private', 'using', 'function', 'variable', 'alias']);

/**
 * Syntax problems of a script: ERROR and MISSING nodes of the tree, plus what the grammar accepts but
 * PowerShell rejects: `"$name: text"` reads as a drive-qualified variable and fails to parse.
 */
export async function powershellSyntaxProblems(source: string): Promise<SyntaxProblem[]> {
  const tree = await parsePowerShell(source);
  const problems: SyntaxProblem[] = [];
  walk(tree.rootNode, (node) => {
    const at = { line: node.startPosition.row + 1, column: node.startPosition.column + 1 };
    if (node.isMissing) problems.push({ ...at, problem: `missing ${node.type}` });
    else if (node.type === 'ERROR') problems.push({ ...at, problem: `unexpected ${JSON.stringify(node.text.slice(0, 40))}` });
    else if (node.type === 'variable') {
      const qualified = /^\$([A-Za-z_][A-Za-z0-9_]*):(.*)$/s.exec(node.text);
      const colonAfter = /^\$[A-Za-z_][A-Za-z0-9_]*$/.test(node.text) && source[node.endIndex] === ':';
      if (colonAfter || (qualified && (!VARIABLE_QUALIFIERS.has((qualified[1] ?? '').toLowerCase()) || qualified[2] === ''))) {
        problems.push({ ...at, problem: `${node.text} reads as a drive-qualified variable; write $($name) before a colon` });
      }
    }
  });
  return problems;
}

export function walk(node: Node, visit: (node: Node) => void): void {
  visit(node);
  for (const child of node.children) if (child) walk(child, visit);
}

export function findAll(root: Node, predicate: (node: Node) => boolean): Node[] {
  const found: Node[] = [];
  walk(root, (n) => {
    if (predicate(n)) found.push(n);
  });
  return found;
}

export function ancestor(node: Node, type: string): Node | undefined {
  for (let p = node.parent; p; p = p.parent) if (p.type === type) return p;
  return undefined;
}

export function functionNamed(root: Node, name: string): Node {
  const fn = findAll(root, (n) => n.type === 'function_statement' && n.children.some((c) => c?.type === 'function_name' && c.text.toLowerCase() === name.toLowerCase()))[0];
  if (!fn) throw new Error(`function ${name} not found`);
  return fn;
}

export function commandName(command: Node): string {
  return command.children.find((c) => c?.type === 'command_name')?.text ?? '';
}

export function commands(root: Node, name?: string): Node[] {
  return findAll(root, (n) => n.type === 'command' && (name === undefined || commandName(n).toLowerCase() === name.toLowerCase()));
}

/** Arguments of a command that are not parameters (`-Name`) or separators, as source text. */
export function commandArguments(command: Node): string[] {
  const elements = command.children.find((c) => c?.type === 'command_elements');
  if (!elements) return [];
  return elements.children.filter((c): c is Node => !!c && c.type !== 'command_argument_sep' && c.type !== 'command_parameter').map((c) => c.text);
}

/** The first hash literal (`@{...}`) below `node`, with its entries as key text and value node. */
export function hashEntries(node: Node): { key: string; value: Node }[] {
  const hash = findAll(node, (n) => n.type === 'hash_literal_expression')[0];
  if (!hash) throw new Error('no hash literal');
  const body = hash.children.find((c) => c?.type === 'hash_literal_body');
  if (!body) return [];
  return body.children
    .filter((c): c is Node => !!c && c.type === 'hash_entry')
    .map((entry) => {
      const keyNode = entry.children.find((c) => c?.type === 'key_expression');
      const value = entry.children.find((c) => c?.type !== 'key_expression' && c?.type !== '=' && c?.isNamed);
      if (!keyNode || !value) throw new Error(`malformed hash entry ${entry.text}`);
      return { key: unquote(keyNode.text), value };
    });
}

export function unquote(text: string): string {
  const t = text.trim();
  if ((t.startsWith("'") && t.endsWith("'")) || (t.startsWith('"') && t.endsWith('"'))) return t.slice(1, -1);
  return t;
}

/** Top-level `$Name = <simple literal>` assignments of a script (strings, numbers, booleans, $null). */
export function topLevelLiterals(root: Node): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const list = root.children.find((c) => c?.type === 'statement_list');
  for (const statement of list?.children ?? []) {
    const assignment = statement?.children.find((c) => c?.type === 'assignment_expression');
    if (!assignment) continue;
    const left = assignment.children.find((c) => c?.type === 'left_assignment_expression')?.text.trim();
    const value = assignment.childForFieldName('value');
    if (!left || !value) continue;
    const literal = evaluateLiteral(value.text, new Map());
    if (literal.ok) out.set(left.replace(/^\$/, ''), literal.value);
  }
  return out;
}

/**
 * Evaluates the small literals the scripts use for defaults: 'text', 1, $true, $false, $null, @(),
 * and `$Variable` from `variables`. Anything else is not a literal.
 */
export function evaluateLiteral(text: string, variables: Map<string, unknown>): { ok: true; value: unknown } | { ok: false } {
  const t = text.trim();
  if (/^'[^']*'$/.test(t)) return { ok: true, value: t.slice(1, -1) };
  if (/^-?[0-9]+$/.test(t)) return { ok: true, value: Number(t) };
  if (/^\$true$/i.test(t)) return { ok: true, value: true };
  if (/^\$false$/i.test(t)) return { ok: true, value: false };
  if (/^\$null$/i.test(t)) return { ok: true, value: null };
  if (/^@\(\s*\)$/.test(t)) return { ok: true, value: [] };
  const variable = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(t);
  if (variable && variables.has(variable[1] ?? '')) return { ok: true, value: variables.get(variable[1] ?? '') };
  return { ok: false };
}

/** The value node of the top-level assignment `$Name = ...`. */
export function topLevelAssignment(root: Node, name: string): Node {
  const list = root.children.find((c) => c?.type === 'statement_list');
  for (const statement of list?.children ?? []) {
    const assignment = statement?.children.find((c) => c?.type === 'assignment_expression');
    const left = assignment?.children.find((c) => c?.type === 'left_assignment_expression')?.text.trim();
    const value = assignment?.childForFieldName('value');
    if (left?.toLowerCase() === `$${name}`.toLowerCase() && value) return value;
  }
  throw new Error(`no top-level assignment to $${name}`);
}
