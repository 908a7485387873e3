/**
 * Package-time build of this project's SSM Command documents from the PowerShell files in src/scripts:
 * schema 2.2, one `aws:runPowerShellScript` step, the parameters of document-parameters.ts, and
 * `timeoutSeconds` bound to the `executionTimeout` parameter.
 *
 * Every parameter the script reads carries `interpolationType: ENV_VAR` in its own definition under
 * `parameters` (Systems Manager user guide, "Data elements and parameters":
 * `"Message": {"type": "String", ..., "interpolationType": "ENV_VAR", "allowedPattern": ...}`), so the SSM
 * Agent (3.3.2746.0 or later) hands it to the script as `$env:SSM_<name>`. It is not an input of the
 * `aws:runPowerShellScript` step: that plugin takes `runCommand`, `timeoutSeconds` and `workingDirectory`
 * only. `executionTimeout` is used by the document itself (`{{ executionTimeout }}`) and has none.
 *
 *     npx tsx src/documents/build-documents.ts [outDir]      # default build/documents
 *
 * writes `<outDir>/<name>.json` per document, ready for `AWS::SSM::Document` `Content`
 * (`DocumentType: Command`, `DocumentFormat: JSON`). Not bundled into the Lambdas.
 *
 * CloudWatch Logs: a Command document has no setting for it; the full output goes to CloudWatch Logs
 * through SendCommand's `CloudWatchOutputConfig`, and the instance profile needs `logs:CreateLogStream`,
 * `logs:PutLogEvents` and `logs:DescribeLogStreams` on that log group.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { assertPortablePattern, DOCUMENTS, NON_SCRIPT_PARAMETERS } from './document-parameters.ts';
import type { DocumentDefinition, DocumentName, DocumentParameter } from './document-parameters.ts';

export const DEFAULT_SCRIPTS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../scripts');
/**
 * What every document's script starts with (logging, result line, IMDSv2, parameter checks, the main
 * try/catch/finally): written once in src/scripts, so a fix lands in every document.
 */
export const PRELUDE_SCRIPT = 'prelude.ps1';
export const DEFAULT_OUT_DIR = 'build/documents';
/** SSM's limit for a document's content. */
export const MAX_DOCUMENT_BYTES = 64 * 1024;

/** A parameter as the built document declares it. */
export type BuiltParameter = DocumentParameter & { interpolationType?: 'ENV_VAR' };

export interface CommandDocument {
  schemaVersion: '2.2';
  description: string;
  parameters: Record<string, BuiltParameter>;
  mainSteps: [
    {
      action: 'aws:runPowerShellScript';
      name: string;
      precondition: { StringEquals: ['platformType', 'Windows'] };
      inputs: { timeoutSeconds: string; runCommand: string[] };
    },
  ];
}

/**
 * The script without its comments: whole-line `#` comments and `<# ... #>` blocks that start a line.
 * SSM accepts at most 64 KB of document content, and the scripts explain themselves at length in the
 * repository; what runs is the same code (the tests compare both scripts token by token). The scripts
 * use no here-strings, so no line inside a string is taken for a comment (checked by the build).
 */
export function stripComments(text: string): string {
  if (/@['"]\s*$/m.test(text)) throw new Error('A script uses a here-string: comments cannot be stripped line by line.');
  const out: string[] = [];
  let inBlock = false;
  for (const line of text.replace(/\r\n?/g, '\n').split('\n')) {
    const trimmed = line.trim();
    if (inBlock) {
      if (trimmed.includes('#>')) inBlock = false;
      continue;
    }
    if (trimmed.startsWith('<#')) {
      inBlock = !trimmed.includes('#>');
      continue;
    }
    if (trimmed.startsWith('#')) continue;
    if (trimmed === '' && (out.length === 0 || out.at(-1) === '')) continue;
    out.push(line);
  }
  return out.join('\n');
}

/** The script's lines as `runCommand`: BOM and CRs removed, trailing blank lines dropped. */
export function scriptLines(text: string): string[] {
  const lines = text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n').split('\n');
  while (lines.length > 0 && lines.at(-1)?.trim() === '') lines.pop();
  return lines;
}

/** Builds one document; throws when a parameter lacks a portable anchored pattern or allowed values. */
export function buildDocument(name: DocumentName, scriptText: string): CommandDocument {
  const definition: DocumentDefinition = DOCUMENTS[name];
  const parameters: Record<string, BuiltParameter> = {};
  for (const [param, spec] of Object.entries(definition.parameters)) {
    if (spec.allowedPattern) assertPortablePattern(`${name}.${param}`, spec.allowedPattern);
    else if (!spec.allowedValues || spec.allowedValues.length === 0) throw new Error(`Parameter ${name}.${param} needs an allowedPattern or allowedValues.`);
    if ('interpolationType' in spec) throw new Error(`Parameter ${name}.${param} declares interpolationType; the build sets ENV_VAR on every script parameter.`);
    parameters[param] = NON_SCRIPT_PARAMETERS.includes(param) ? { ...spec } : { ...spec, interpolationType: 'ENV_VAR' };
  }
  if (!('executionTimeout' in definition.parameters)) throw new Error(`Document ${name} needs an executionTimeout parameter.`);
  if (scriptText.includes('{{')) throw new Error(`${definition.script} contains "{{": parameters must be read from $env:SSM_<name>, never interpolated.`);
  // Serverless resolves ${...} inside files loaded with ${file(...)}; PowerShell has $(...) for the same.
  if (scriptText.includes('${')) throw new Error(`${definition.script} contains "\${": write $($name) instead, the deploy tooling would read it as a variable.`);

  const document: CommandDocument = {
    schemaVersion: '2.2',
    description: definition.description,
    parameters,
    mainSteps: [
      {
        action: 'aws:runPowerShellScript',
        name: definition.stepName,
        precondition: { StringEquals: ['platformType', 'Windows'] },
        inputs: {
          timeoutSeconds: '{{ executionTimeout }}',
          runCommand: scriptLines(stripComments(scriptText)),
        },
      },
    ],
  };
  const size = Buffer.byteLength(JSON.stringify(document), 'utf8');
  if (size > MAX_DOCUMENT_BYTES) throw new Error(`Document ${name} is ${size} bytes; SSM accepts at most ${MAX_DOCUMENT_BYTES}.`);
  return document;
}

/** A document's whole script: the shared prelude, then the document's own script. */
export function documentScriptText(name: DocumentName, scriptsDir: string = DEFAULT_SCRIPTS_DIR): string {
  const prelude = scriptLines(readFileSync(join(scriptsDir, PRELUDE_SCRIPT), 'utf8'));
  const own = scriptLines(readFileSync(join(scriptsDir, DOCUMENTS[name].script), 'utf8'));
  return [...prelude, '', ...own].join('\n');
}

/** Every document of this project, keyed by its logical name, built from the scripts in `scriptsDir`. */
export function buildDocuments(scriptsDir: string = DEFAULT_SCRIPTS_DIR): Record<DocumentName, CommandDocument> {
  const out = {} as Record<DocumentName, CommandDocument>;
  for (const name of Object.keys(DOCUMENTS) as DocumentName[]) {
    out[name] = buildDocument(name, documentScriptText(name, scriptsDir));
  }
  return out;
}

/** Writes `<outDir>/<name>.json` for every document; returns the paths written. */
export function writeDocuments(outDir: string = DEFAULT_OUT_DIR, scriptsDir: string = DEFAULT_SCRIPTS_DIR): string[] {
  mkdirSync(outDir, { recursive: true });
  return Object.entries(buildDocuments(scriptsDir)).map(([name, document]) => {
    const path = join(outDir, `${name}.json`);
    writeFileSync(path, `${JSON.stringify(document, null, 2)}\n`);
    return path;
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  for (const path of writeDocuments(process.argv[2] ?? DEFAULT_OUT_DIR)) console.log(`wrote ${path}`);
}
