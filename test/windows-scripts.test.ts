/**
 * Static checks of the PowerShell scripts in src/scripts (no PowerShell on this machine): syntax through
 * tree-sitter-powershell, IMDSv2 only, parameters only from $env:SSM_*, and the scripts' own tables
 * (exit codes, error codes, VSS error patterns, tag keys) against the TypeScript that relies on them.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Node, Tree } from 'web-tree-sitter';
import { DOCUMENTS, NON_SCRIPT_PARAMETERS } from '../src/documents/document-parameters.ts';
import type { DocumentName } from '../src/documents/document-parameters.ts';
import { FAILURES } from '../src/lib/failure-catalogue.ts';
import { diagnoseVssOutput } from '../src/lib/methods/aws-vss.ts';
import { CONSISTENCY, CONSISTENCY_TAG, SHADOW_SET_TAG } from '../src/lib/methods/diskshadow.ts';
import {
  isRetryableExitCode,
  RESTORE_ERROR_CODES,
  RESTORE_EXIT_CODES,
  RESULT_LINE_PREFIX,
  SNAPSHOT_ERROR_CODES,
  SNAPSHOT_EXIT_CODES,
} from '../src/lib/result-line.ts';
import { ATTEMPT_TAG, INSTANCE_TAG, METHOD_TAG, RUN_TAG } from '../src/lib/run-id.ts';
import {
  ancestor,
  commandArguments,
  commandName,
  commands,
  documentNames,
  documentScript,
  findAll,
  functionNamed,
  hashEntries,
  parsePowerShell,
  powershellSyntaxProblems,
  PRELUDE_SCRIPT,
  readScript,
  scriptFiles,
  topLevelAssignment,
  topLevelLiterals,
  unquote,
} from './powershell.ts';


const IMDS_ADDRESS = /169\.254\.169\.254|fd00:ec2::254/i;
const HTTP_COMMANDS = new Set(['invoke-restmethod', 'invoke-webrequest', 'irm', 'iwr']);

/** Every way a script reaches the instance metadata service that does not use an IMDSv2 token. */
async function imdsProblems(source: string): Promise<string[]> {
  const root = (await parsePowerShell(source)).rootNode;
  const problems: string[] = [];
  const where = (n: Node): string => `line ${n.startPosition.row + 1}`;

  const checkRequest = (command: Node): void => {
    const text = command.text;
    const enclosing = ancestor(command, 'function_statement')?.text ?? source;
    if (!HTTP_COMMANDS.has(commandName(command).toLowerCase())) {
      problems.push(`${where(command)}: the metadata service is reached with ${commandName(command)}, not Invoke-RestMethod/Invoke-WebRequest with a token`);
      return;
    }
    const headers = /-Headers\s+\$([A-Za-z_][A-Za-z0-9_]*)/i.exec(text);
    if (!headers) {
      problems.push(`${where(command)}: metadata request without -Headers`);
      return;
    }
    const isTokenRequest = /-Method\s+Put\b/i.test(text) && /\/api\/token/.test(text);
    const header = isTokenRequest ? 'X-aws-ec2-metadata-token-ttl-seconds' : 'X-aws-ec2-metadata-token';
    const assignment = new RegExp(`\\$${headers[1]}\\s*=\\s*@\\{[^}]*['"]${header}['"]\\s*=`, 'i');
    if (!assignment.test(enclosing)) problems.push(`${where(command)}: $${headers[1]} does not carry the ${header} header`);
  };

  const imdsVariables = new Set<string>();
  for (const literal of findAll(root, (n) => n.childCount === 0 && IMDS_ADDRESS.test(n.text)).concat(findAll(root, (n) => n.type === 'string_literal' && IMDS_ADDRESS.test(n.text)))) {
    const command = ancestor(literal, 'command');
    if (command) {
      checkRequest(command);
      continue;
    }
    const assignment = ancestor(literal, 'assignment_expression');
    const left = assignment?.children.find((c) => c?.type === 'left_assignment_expression')?.text.trim().toLowerCase();
    if (left) imdsVariables.add(left);
    else problems.push(`${where(literal)}: the metadata address outside an assignment or request`);
  }
  for (const variable of findAll(root, (n) => n.type === 'variable' && imdsVariables.has(n.text.toLowerCase()))) {
    if (ancestor(variable, 'left_assignment_expression')) continue;
    const command = ancestor(variable, 'command');
    if (command) checkRequest(command);
    else problems.push(`${where(variable)}: ${variable.text} used outside a metadata request (a URL built elsewhere escapes this check)`);
  }
  for (const forbidden of [/Get-EC2InstanceMetadata/i, /Net\.WebClient/i, /\bcurl(\.exe)?\b/i, /\bwget\b/i]) {
    if (forbidden.test(source)) problems.push(`uses ${forbidden.source}: reach the metadata service only through the token helpers`);
  }
  return [...new Set(problems)];
}

describe('PowerShell syntax check', () => {
  it.each(scriptFiles())('accepts %s: no ERROR or MISSING node', async (file) => {
    expect(await powershellSyntaxProblems(readScript(file))).toEqual([]);
  });

  it.each([
    ['an unclosed brace', 'function Get-X {\n  if ($a) { "x" }\n'],
    ['an unclosed string', '$y = "unclosed\n$z = 1\n'],
    ['an unclosed hash literal', '$h = @{ a = 1\n'],
    ['a dangling operator', 'foreach ($a in $b) { $c = ($a + }\n'],
    ['an unterminated here-string', '$s = @"\nhello\n'],
    ['a drive-qualified variable in a string', '$m = "shadow set $SetId: gone"\n'],
  ])('rejects %s', async (_what, source) => {
    expect((await powershellSyntaxProblems(source)).length).toBeGreaterThan(0);
  });

  it('checks every script a document is built from, and builds a document from every script', () => {
    expect(scriptFiles()).toEqual([PRELUDE_SCRIPT, ...Object.values(DOCUMENTS).map((d) => d.script)].sort());
  });

  it.each(documentNames())('%s: the whole document script (prelude + own script) parses', async (name) => {
    expect(await powershellSyntaxProblems(documentScript(name))).toEqual([]);
  });
});

describe('shared prelude', () => {
  const functionNames = async (text: string): Promise<string[]> =>
    findAll((await parsePowerShell(text)).rootNode, (n) => n.type === 'function_statement').map(
      (n) => n.children.find((c) => c?.type === 'function_name')?.text.toLowerCase() ?? '',
    );

  it.each(documentNames())('%s starts with the prelude, and its own script redefines none of it', async (name) => {
    const prelude = readScript(PRELUDE_SCRIPT).replace(/\r\n?/g, '\n').trimEnd();
    expect(documentScript(name).startsWith(prelude)).toBe(true);
    const shared = new Set(await functionNames(prelude));
    const own = await functionNames(readScript(DOCUMENTS[name].script));
    expect(own.filter((f) => shared.has(f))).toEqual([]);
    expect(new Set(own).size, 'no function defined twice').toBe(own.length);
  });

  it('holds what every document needs, once: IMDSv2, logging, the result line, parameter checks and the main block', async () => {
    const prelude = await functionNames(readScript(PRELUDE_SCRIPT));
    for (const fn of ['get-imdstoken', 'get-imdsvalue', 'write-log', 'add-warning', 'format-resultline', 'write-stdout', 'confirm-parameter', 'assert-fulllanguage', 'invoke-main']) {
      expect(prelude).toContain(fn);
    }
    for (const name of documentNames()) {
      const own = readScript(DOCUMENTS[name].script);
      expect(own, name).not.toMatch(/169\.254\.169\.254|\bcatch\s*\{[^}]*Format-ResultLine/);
      const ownRoot = (await parsePowerShell(own)).rootNode;
      expect(findAll(ownRoot, (n) => n.type === 'assignment_expression' && /^\$ErrorActionPreference\s*=/i.test(n.text)), name).toEqual([]);
      expect(own.trimEnd().split('\n').at(-1), `${name} ends by handing its body to Invoke-Main`).toMatch(/^Invoke-Main -Body \{ [A-Za-z-]+ \} -Cleanup \{ [A-Za-z-]+ \}$/);
    }
  });
});

describe('instance metadata access', () => {
  it.each(scriptFiles())('%s reaches IMDS only with an IMDSv2 token', async (file) => {
    expect(await imdsProblems(readScript(file))).toEqual([]);
  });

  it.each([
    ['an IMDSv1 call', "$id = Invoke-RestMethod -Uri 'http://169.254.169.254/latest/meta-data/instance-id'\n"],
    [
      'a URL built outside the request',
      "$base = 'http://169.254.169.254/latest'\n$uri = \"$base/meta-data/instance-id\"\n$id = Invoke-RestMethod -Uri $uri\n",
    ],
    [
      'headers without the token',
      "$ImdsBase = 'http://169.254.169.254/latest'\nfunction Get-Id {\n  $h = @{ 'Accept' = 'text/plain' }\n  Invoke-RestMethod -Uri \"$ImdsBase/meta-data/instance-id\" -Headers $h\n}\n",
    ],
    ['the AWS Tools metadata cmdlet', "$id = Get-EC2InstanceMetadata -Category InstanceId\n"],
  ])('flags %s', async (_what, source) => {
    expect((await imdsProblems(source)).length).toBeGreaterThan(0);
  });

  it('asks for the token with PUT and a TTL header', async () => {
    for (const name of documentNames()) {
      const text = documentScript(name);
      expect(text).toMatch(/Invoke-RestMethod -Method Put -Uri "\$ImdsBase\/api\/token" -Headers \$headers/);
      expect(text).toContain("'X-aws-ec2-metadata-token-ttl-seconds' = '300'");
    }
  });
});

describe('document parameters in the scripts', () => {
  const cases = (Object.keys(DOCUMENTS) as DocumentName[]).map((name) => [name, DOCUMENTS[name].script] as const);

  it.each(cases)('%s: the script reads every parameter as $env:SSM_<name> and nothing else', async (name, file) => {
    const root = (await parsePowerShell(readScript(file))).rootNode;
    const read = new Set(findAll(root, (n) => n.type === 'variable' && /^\$env:SSM_/i.test(n.text)).map((n) => n.text.replace(/^\$env:SSM_/i, '')));
    const expected = Object.keys(DOCUMENTS[name].parameters).filter((p) => !NON_SCRIPT_PARAMETERS.includes(p));
    expect([...read].sort()).toEqual(expected.sort());
  });

  it.each(scriptFiles())('%s has no {{ }} interpolation and reads no SSM_ variable another way', (file) => {
    const text = readScript(file);
    expect(text).not.toContain('{{');
    // Serverless resolves ${...} in files loaded with ${file(...)}: the documents must not contain it.
    expect(text).not.toContain('${');
    expect(text).not.toMatch(/GetEnvironmentVariable|(?<!\$)env:\\?SSM_|Get-ChildItem\s+env:/i);
  });

  it('checks each parameter in the script against the pattern the document uses', async () => {
    const snapshot = topLevelLiterals((await parsePowerShell(documentScript('diskshadow-snapshot'))).rootNode);
    const restore = topLevelLiterals((await parsePowerShell(documentScript('diskshadow-restore'))).rootNode);
    const s = DOCUMENTS['diskshadow-snapshot'].parameters;
    const r = DOCUMENTS['diskshadow-restore'].parameters;
    expect(snapshot.get('RunIdPattern')).toBe(s.RunId.allowedPattern);
    expect(snapshot.get('AttemptPattern')).toBe(s.Attempt.allowedPattern);
    const booleanPattern = new RegExp(String(snapshot.get('BooleanPattern')));
    for (const value of s.ExcludeBootVolume.allowedValues) expect(booleanPattern.test(value)).toBe(true);
    for (const value of ['true', 'false', 'TRUE', 'Yes', '', 'True ']) expect(booleanPattern.test(value)).toBe(false);
    expect(restore.get('RunIdPattern')).toBe(r.RunId.allowedPattern);
    expect(restore.get('VolumeIdsPattern')).toBe(r.VolumeIds.allowedPattern);
    expect(restore.get('GuidPattern')).toBe(r.ShadowSetId.allowedPattern);
    expect(snapshot.get('GuidPattern')).toBe(r.ShadowSetId.allowedPattern);
  });
});

describe('exit codes and error codes', () => {
  let snapshot: Tree;
  let restore: Tree;
  beforeAll(async () => {
    snapshot = await parsePowerShell(documentScript('diskshadow-snapshot'));
    restore = await parsePowerShell(documentScript('diskshadow-restore'));
  });

  const table = (tree: Tree, name: string): Record<string, string> =>
    Object.fromEntries(hashEntries(topLevelAssignment(tree.rootNode, name)).map((e) => [e.key, e.value.text.trim()]));

  it('uses the exit codes of result-line.ts, even retryable and odd permanent', () => {
    for (const [tree, expected] of [
      [snapshot, SNAPSHOT_EXIT_CODES],
      [restore, RESTORE_EXIT_CODES],
    ] as const) {
      const codes = Object.fromEntries(Object.entries(table(tree, 'ExitCodes')).map(([k, v]) => [k, Number(v)]));
      expect(codes).toEqual(expected);
      for (const [stage, code] of Object.entries(codes)) {
        if (stage.endsWith('-retryable')) expect(isRetryableExitCode(code)).toBe(true);
        if (stage.endsWith('-permanent')) expect(isRetryableExitCode(code)).toBe(false);
      }
    }
    expect(isRetryableExitCode(SNAPSHOT_EXIT_CODES.unexpected)).toBe(true);
    expect(isRetryableExitCode(SNAPSHOT_EXIT_CODES.success)).toBe(false);
  });

  it('reports snapshot error codes of the failure catalogue, with its retryable flags', () => {
    const codes = Object.fromEntries(Object.entries(table(snapshot, 'FailureRetryable')).map(([k, v]) => [k, v.toLowerCase() === '$true']));
    expect(codes).toEqual(SNAPSHOT_ERROR_CODES);
    for (const [code, retryable] of Object.entries(codes)) {
      expect(FAILURES, code).toHaveProperty(code);
      expect(FAILURES[code as keyof typeof FAILURES].retryable, code).toBe(retryable);
    }
  });

  it('reports restore error codes of result-line.ts', () => {
    const codes = Object.fromEntries(Object.entries(table(restore, 'FailureRetryable')).map(([k, v]) => [k, v.toLowerCase() === '$true']));
    expect(codes).toEqual(RESTORE_ERROR_CODES);
  });

  it('stops only with a known stage and a known error code', async () => {
    // The calls a document can reach: its own script's, and those in the prelude functions it uses.
    const prelude = (await parsePowerShell(readScript(PRELUDE_SCRIPT))).rootNode;
    const preludeFunctions = findAll(prelude, (n) => n.type === 'function_statement').map((f) => ({
      name: (f.children.find((c) => c?.type === 'function_name')?.text ?? '').toLowerCase(),
      node: f,
    }));
    const reachable = (own: Node): Node[] => {
      const used = new Set<string>();
      const visit = (root: Node): void => {
        for (const c of commands(root)) {
          const fn = preludeFunctions.find((f) => f.name === commandName(c).toLowerCase());
          if (fn && !used.has(fn.name)) {
            used.add(fn.name);
            visit(fn.node);
          }
        }
      };
      visit(own);
      // Invoke-Main runs every document and calls these on its own.
      for (const always of ['invoke-main']) if (!used.has(always)) visit(preludeFunctions.find((f) => f.name === always)?.node ?? own);
      return [...commands(own, 'Stop-WithFailure'), ...preludeFunctions.filter((f) => used.has(f.name)).flatMap((f) => commands(f.node, 'Stop-WithFailure'))];
    };
    for (const [file, stages, errorCodes] of [
      ['diskshadow-snapshot.ps1', ['vss', 'ebs', 'instance'], SNAPSHOT_ERROR_CODES],
      ['diskshadow-restore.ps1', ['instance', 'disk', 'revert'], RESTORE_ERROR_CODES],
    ] as const) {
      const calls = reachable((await parsePowerShell(readScript(file))).rootNode);
      expect(calls.length).toBeGreaterThan(5);
      for (const call of calls) {
        const [stage, code] = commandArguments(call);
        expect(stages, call.text).toContain(unquote(stage ?? ''));
        if (code?.startsWith("'")) expect(Object.keys(errorCodes), call.text).toContain(unquote(code));
        else expect(code, 'a computed code comes from Get-VssFailureCode').toBe('$code');
      }
    }
  });

  it('classifies VSS errors like the aws-vss diagnosis, by name and by HRESULT', () => {
    const patterns = findAll(topLevelAssignment(snapshot.rootNode, 'VssErrorPatterns'), (n) => n.type === 'hash_literal_expression').map((hash) => {
      const entries = Object.fromEntries(hashEntries(hash).map((e) => [e.key, unquote(e.value.text)]));
      return { pattern: new RegExp(entries.Pattern ?? '(?!)', 'i'), code: entries.Code ?? '' };
    });
    const classify = (text: string): string => patterns.find((p) => p.pattern.test(text))?.code ?? 'script-failed';
    for (const code of patterns.map((p) => p.code)) expect(Object.keys(SNAPSHOT_ERROR_CODES)).toContain(code);

    const named = [
      'VSS_E_WRITERERROR_NONRETRYABLE',
      'VSS_E_WRITERERROR_TIMEOUT',
      'VSS_E_WRITERERROR_OUTOFRESOURCES',
      'VSS_E_WRITERERROR_RETRYABLE',
      'VSS_E_SNAPSHOT_SET_IN_PROGRESS',
      'VSS_E_INSUFFICIENT_STORAGE',
      'VSS_E_FLUSH_WRITES_TIMEOUT',
      'VSS_E_HOLD_WRITES_TIMEOUT',
    ];
    for (const name of named) {
      const text = `COM call "lvbc->DoSnapshotSet" failed: ${name}`;
      expect(classify(text), name).toBe(diagnoseVssOutput(text, 1).code);
    }
    expect(classify('Error 0x800423F3 from the writer')).toBe('vss-writer-retryable');
    expect(classify('Error 0x800423f4')).toBe('vss-writer-nonretryable');
    expect(classify('hr = 0x80042316')).toBe('vss-in-progress');
    expect(classify('hr = 0x80042313')).toBe('vss-timeout');
    expect(classify('hr = 0x80042317, the maximum number of shadow copies')).toBe('vss-insufficient-storage');
    expect(classify('something else went wrong')).toBe('script-failed');
  });
});

describe('snapshot script', () => {
  const text = documentScript('diskshadow-snapshot');

  it('tags with the keys the orchestrator and the restore read', async () => {
    const literals = topLevelLiterals((await parsePowerShell(text)).rootNode);
    expect(literals.get('RunTag')).toBe(RUN_TAG);
    expect(literals.get('AttemptTag')).toBe(ATTEMPT_TAG);
    expect(literals.get('MethodTag')).toBe(METHOD_TAG);
    expect(literals.get('InstanceTag')).toBe(INSTANCE_TAG);
    expect(literals.get('ShadowSetTag')).toBe(SHADOW_SET_TAG);
    expect(literals.get('ConsistencyTag')).toBe(CONSISTENCY_TAG);
    expect(literals.get('AfterRevert')).toBe(CONSISTENCY.afterRevert);
    expect(literals.get('NotShadowed')).toBe(CONSISTENCY.notShadowed);
    expect(literals.get('Method')).toBe('diskshadow');
  });

  it('makes one CreateSnapshots call, tagged on create, consistent-after-revert only after DiskShadow created the set, never AppConsistent', async () => {
    const root = (await parsePowerShell(text)).rootNode;
    const calls = commands(root, 'New-EC2SnapshotBatch');
    expect(calls).toHaveLength(1);
    expect(calls[0]?.text).toMatch(/-TagSpecification \$tagSpec/);
    expect(commands(root, 'New-EC2Snapshot')).toHaveLength(0);
    expect(text).toContain("$tagSpec.ResourceType = 'snapshot'");
    expect(text).toContain('$tagSpec.Tags.Add((New-Ec2Tag $ConsistencyTag $AfterRevert))');
    // AppConsistent=true reads as "consistent as it stands" to AWS tooling, the console and AWS Backup.
    const strings = findAll(root, (n) => n.type === 'string_literal' || n.type === 'verbatim_string_characters').map((n) => n.text);
    expect(strings.filter((t) => /AppConsistent/.test(t))).toEqual([]);
    // Requesting the snapshots comes after the shadow copies exist and the set id is known.
    const order = ["$result.vss = 'created'", 'Request-Snapshots $params', "Set-Content -LiteralPath $files.Proceed"];
    const positions = order.map((s) => text.indexOf(s));
    expect(positions.every((p) => p > 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
  });

  it('runs a copy backup (no begin/end backup) when CopyOnly is True, a full backup otherwise', async () => {
    // DiskShadow: "begin backup" starts a full backup session and "overrides the default copy backup
    // setting"; without it the shadow copy is a copy backup (Windows Commands reference, diskshadow).
    const root = (await parsePowerShell(text)).rootNode;
    const fn = functionNamed(root, 'New-DiskShadowScript').text;
    expect(fn).toMatch(/if \(-not \$CopyOnly\) \{ \$lines \+= 'begin backup' \}/);
    expect(fn).toMatch(/if \(-not \$CopyOnly\) \{ \$lines \+= 'end backup' \}/);
    expect(fn.indexOf("'begin backup'")).toBeLessThan(fn.indexOf("'add volume {0} alias {1}'"));
    expect(fn.indexOf("'end backup'")).toBeGreaterThan(fn.indexOf("('exec {0}' -f $Files.StepCmd)"));
    expect(text).toContain("CopyOnly          = ((Confirm-Parameter 'CopyOnly' $env:SSM_CopyOnly $BooleanPattern) -ceq 'True')");
    expect(text).toContain('New-DiskShadowScript $files $volumes $params.CopyOnly');
  });

  it('drives DiskShadow with a persistent context, the writers and end backup only after the request', () => {
    for (const line of ["'set context persistent'", "'begin backup'", "'add volume {0} alias {1}'", "'create'", "('exec {0}' -f $Files.StepCmd)", "'end backup'"]) {
      expect(text).toContain(line);
    }
    expect(text).not.toMatch(/nowriters/i);
    expect(text).not.toMatch(/delete shadows all/i);
  });

  it('cleans up in finally: DiskShadow stopped, this set deleted, work files removed', () => {
    const finallyAt = text.lastIndexOf('} finally {');
    expect(finallyAt).toBeGreaterThan(0);
    expect(text.slice(finallyAt)).toContain('if ($Cleanup) { & $Cleanup }');
    expect(text.trimEnd().endsWith('Invoke-Main -Body { Invoke-DiskShadowSnapshot } -Cleanup { Complete-Cleanup }')).toBe(true);
    const cleanup = text.slice(text.indexOf('function Complete-Cleanup'));
    for (const step of ['Stop-ProcessTree $process.Id', 'Remove-ShadowSet $script:SetId', 'Remove-TreeSafely $script:Work', 'Exit-RunLock']) expect(cleanup).toContain(step);
  });
});

describe('stdout discipline', () => {
  it.each(documentNames())('%s prints exactly one result line, first, through one writer', async (name) => {
    const text = documentScript(name);
    const root = (await parsePowerShell(text)).rootNode;
    expect(topLevelLiterals(root).get('ResultPrefix')).toBe(RESULT_LINE_PREFIX);
    expect(commands(root, 'Write-Host')).toHaveLength(0);
    expect(commands(root, 'Format-ResultLine')).toHaveLength(1);
    const writers = commands(root, 'Write-Output').concat(findAll(root, (n) => /^\[Console\]::Out/i.test(n.text) && n.type === 'member_access'));
    for (const w of writers) expect(ancestor(w, 'function_statement')?.text, w.text).toMatch(/^function Write-Stdout/);
    const main = functionNamed(root, 'Invoke-Main').text;
    const finallyBlock = main.slice(main.lastIndexOf('} finally {'));
    expect(finallyBlock.indexOf('Write-Stdout (Format-ResultLine $script:Result)')).toBeGreaterThan(0);
    expect(finallyBlock.indexOf('Write-Stdout (Format-ResultLine')).toBeLessThan(finallyBlock.indexOf('foreach ($line in $script:Log) { Write-Stdout $line }'));
    expect(text).toContain('"$ResultPrefix $json"');
    expect(text).toContain('ConvertTo-Json -InputObject $Result -Compress -Depth 6');
  });
});

describe('restore script', () => {
  const text = documentScript('diskshadow-restore');

  it('reverts only shadow copies of the given set on the given disks, after checking all of them', async () => {
    expect(text).toMatch(/\(ConvertTo-GuidText \$_\.SetID\) -eq \$SetId/);
    expect(text).toMatch(/Get-SetShadowCopies \$SetId \| Where-Object \{ \$Disk\.Paths -contains \$_\.VolumeName \}/);
    expect(text).toContain('"revert $($Shadow.ID)"');
    expect(text).not.toMatch(/list shadows all|delete shadows|Get-Disk \| Where-Object \{ \$_\.IsOffline/i);
    const root = (await parsePowerShell(text)).rootNode;
    expect(commands(root, 'Invoke-Revert')).toHaveLength(1);
    expect(text.indexOf('Initialize-RestoreDisk $params.VolumeIds[$i]')).toBeLessThan(text.indexOf('Invoke-Revert $diskshadow $shadow $work'));
  });

  it('refuses the boot disk and fixes signature collisions on the restored disk only', () => {
    expect(text).toContain('if ($disk.IsBoot -or $disk.IsSystem)');
    expect(text).toContain('Set-Disk -Number $number -Guid');
    expect(text).toContain('Set-Disk -Number $number -Signature');
    expect(text).toContain("'uniqueid disk id=$newId'".replace(/'/g, '"'));
  });
});

describe('native commands (Windows PowerShell 5.1)', () => {
  const NATIVE = /(\.exe|\.cmd|\.bat)$|^(diskpart|vssadmin|taskkill|icacls|mountvol|fsutil|cmd|ping|diskshadow)$/i;
  const inFunction = (node: Node, name: string): boolean => {
    const fn = ancestor(node, 'function_statement');
    return !!fn && fn.children.some((c) => c?.type === 'function_name' && c.text.toLowerCase() === name.toLowerCase());
  };

  it.each(documentNames())('%s: redirects a native command stderr only inside Invoke-NativeCommand, which is not under Stop', async (name) => {
    // In Windows PowerShell 5.1 every stderr line of a native command redirected with 2>&1 becomes an
    // ErrorRecord, and under $ErrorActionPreference = 'Stop' the first one terminates the script
    // (PowerShell/PowerShell#3996; changed only in PowerShell 7.1 by #13361).
    const root = (await parsePowerShell(documentScript(name))).rootNode;
    const stderr = findAll(root, (n) => n.type === 'redirection' && /^2>/.test(n.text.trim()));
    for (const r of stderr) expect(inFunction(r, 'Invoke-NativeCommand'), `line ${r.startPosition.row + 1}: ${r.text}`).toBe(true);
    const fn = functionNamed(root, 'Invoke-NativeCommand');
    const body = fn.text.slice(fn.text.indexOf('{') + 1).trim();
    expect(body.startsWith("$ErrorActionPreference = 'Continue'"), 'Continue is set first, for this function only').toBe(true);
    const assignments = findAll(root, (n) => n.type === 'assignment_expression' && /^\$ErrorActionPreference\s*=/i.test(n.text));
    expect(assignments.map((a) => (inFunction(a, 'Invoke-NativeCommand') ? 'native' : a.text))).toEqual(["$ErrorActionPreference = 'Stop'", 'native']);
  });

  it.each(documentNames())('%s: runs native programs only through Invoke-NativeCommand or Start-Process', async (name) => {
    const root = (await parsePowerShell(documentScript(name))).rootNode;
    const nameOf = (c: Node): string => c.children.find((x) => x?.type === 'command_name' || x?.type === 'command_name_expr')?.text ?? '';
    const direct = commands(root).filter((c) => NATIVE.test(nameOf(c)) && !inFunction(c, 'Invoke-NativeCommand'));
    expect(direct.map((c) => `line ${c.startPosition.row + 1}: ${c.text}`)).toEqual([]);
  });

  it.each(documentNames())('%s: ends a process with its children (taskkill /T), never Stop-Process alone', async (name) => {
    // Stop-Process ends only the process; DiskShadow's "exec" step runs cmd.exe, which runs ping.
    const text = documentScript(name);
    const root = (await parsePowerShell(text)).rootNode;
    expect(commands(root, 'Stop-Process')).toHaveLength(0);
    const fn = functionNamed(root, 'Stop-ProcessTree').text;
    expect(fn).toMatch(/taskkill\.exe/);
    expect(fn).toMatch(/'\/T'/);
    expect(fn).toMatch(/'\/F'/);
  });
});

describe('the state folder under C:\\ProgramData', () => {
  // C:\ProgramData lets every user create folders, and the creator owns what they create: a folder made
  // there in advance by an ordinary user would hold the script DiskShadow runs as SYSTEM ("exec").
  it('is created with its security descriptor in one call, protected, for SYSTEM and Administrators only', async () => {
    const root = (await parsePowerShell(readScript(PRELUDE_SCRIPT))).rootNode;
    const literals = topLevelLiterals(root);
    expect(topLevelAssignment(root, 'TrustedOwnerSids').text.replace(/\s+/g, ' ')).toBe("@('S-1-5-18', 'S-1-5-32-544')");
    expect(literals.get('StateFolderName')).toBe('vss-snapshots');
    const security = functionNamed(root, 'New-TrustedDirectorySecurity').text;
    expect(security).toContain('SetAccessRuleProtection($true, $false)');
    expect(security).toMatch(/foreach \(\$sid in \$TrustedOwnerSids\)/);
    expect(security).toMatch(/'FullControl', 'ContainerInherit, ObjectInherit', 'None', 'Allow'/);
    const create = functionNamed(root, 'Initialize-TrustedDirectory').text;
    expect(create).toContain('[System.IO.Directory]::CreateDirectory($Path, (New-TrustedDirectorySecurity))');
    expect(create).toMatch(/Test-TrustedItem \$Path/);
    expect(create).toMatch(/untrusted-/);
    const trusted = functionNamed(root, 'Test-TrustedItem').text;
    expect(trusted).toMatch(/ReparsePoint/);
    expect(trusted).toMatch(/GetOwner\(\[System\.Security\.Principal\.SecurityIdentifier\]\)/);
    expect(trusted).toMatch(/\$TrustedOwnerSids -contains/);
  });

  it.each(documentNames())('%s: every folder it uses is made by Initialize-TrustedDirectory, never New-Item or mkdir', async (name) => {
    const text = documentScript(name);
    const root = (await parsePowerShell(text)).rootNode;
    const makers = commands(root).filter((c) => /^(New-Item|mkdir|md)$/i.test(commandName(c)) && /Directory/i.test(c.text + commandName(c)));
    expect(makers.map((c) => c.text)).toEqual([]);
    const creates = findAll(root, (n) => /\[System\.IO\.Directory\]::CreateDirectory\(/i.test(n.text) && n.type === 'invokation_expression');
    for (const c of creates) expect(ancestor(c, 'function_statement')?.text ?? '', c.text).toMatch(/^function Initialize-TrustedDirectory/);
    // One place names the folder (the prelude's Get-StateDirectory); scripts ask it for their folders.
    expect(text.match(/\$env:ProgramData/gi)).toHaveLength(1);
  });

  it('takes the one-run-at-a-time lock as a file in that folder, not as a named mutex any user could create first', async () => {
    const root = (await parsePowerShell(documentScript('diskshadow-snapshot'))).rootNode;
    const lock = functionNamed(root, 'Enter-RunLock').text;
    expect(lock).toMatch(/\[System\.IO\.FileShare\]::None/);
    expect(lock).toMatch(/Join-Path \$StateDir/);
    expect(documentScript('diskshadow-snapshot')).not.toMatch(/System\.Threading\.Mutex/);
  });

  it.each(documentNames())('%s: never deletes a tree with Remove-Item -Recurse, which follows junctions in PowerShell 5.1', async (name) => {
    // PowerShell/PowerShell#621 (fixed in PowerShell 6 by #3637): Remove-Item -Recurse descends into a
    // directory junction and deletes what it points to.
    const root = (await parsePowerShell(documentScript(name))).rootNode;
    const recursive = commands(root).filter((c) => /^(Remove-Item|rm|del|rmdir|ri)$/i.test(commandName(c)) && /-Recurse/i.test(c.text));
    expect(recursive.map((c) => c.text)).toEqual([]);
    const remover = functionNamed(root, 'Remove-TreeSafely').text;
    expect(remover).toMatch(/ReparsePoint/);
    // A reparse point is deleted itself (non-recursively), never descended into.
    expect(remover).toMatch(/\[System\.IO\.Directory\]::Delete\(\$item\.FullName, \$false\)/);
    expect(remover).not.toMatch(/::Delete\([^)]*\$true\)/);
  });
});

describe('disks without a shadow copy', () => {
  it('tags the set after-revert on create only when every disk holds a shadowed volume, else each snapshot afterwards', async () => {
    const text = documentScript('diskshadow-snapshot');
    const root = (await parsePowerShell(text)).rootNode;
    expect(functionNamed(root, 'Request-Snapshots').text).toContain('if ($ConsistencyOnCreate) { $tagSpec.Tags.Add((New-Ec2Tag $ConsistencyTag $AfterRevert)) }');
    const body = functionNamed(root, 'Invoke-DiskShadowSnapshot').text;
    expect(body).toContain('Request-Snapshots $params $instanceId $region $setId ($notShadowedIds.Count -eq 0)');
    const tagging = functionNamed(root, 'Set-ConsistencyTags').text;
    expect(tagging).toMatch(/\$NotShadowedVolumeIds -contains \$snapshot\.VolumeId\) \{ \$value = \$NotShadowed \}/);
    // Tagged per snapshot only once the shadow copies are known to have survived until the request.
    expect(body.indexOf('Set-ConsistencyTags $snapshots $notShadowedIds $region')).toBeGreaterThan(body.indexOf("'vss-insufficient-storage'"));
    // A disk whose EBS volume id cannot be read (Xen) cannot be told apart: refused before DiskShadow runs.
    expect(body.indexOf("Stop-WithFailure 'instance' 'unshadowed-disk'")).toBeGreaterThan(0);
    expect(body.indexOf("Stop-WithFailure 'instance' 'unshadowed-disk'")).toBeLessThan(body.indexOf('Start-Process -FilePath $diskshadow'));
    expect(functionNamed(root, 'Get-UnshadowedDisks').text).toMatch(/\$serial -match '\^vol\[0-9a-f\]\{8,17\}\$'/);
  });

  it('restore: leaves a disk without any NTFS/ReFS volume as it stands instead of refusing every disk', async () => {
    const root = (await parsePowerShell(documentScript('diskshadow-restore'))).rootNode;
    const init = functionNamed(root, 'Resolve-DiskShadows').text;
    const skip = init.indexOf("$Record.outcome = 'not-shadowed'");
    expect(skip).toBeGreaterThan(0);
    expect(init).toContain('-not (Test-ShadowableDisk $number)');
    expect(skip).toBeLessThan(init.indexOf("'shadow-copy-not-found'"));
    expect(functionNamed(root, 'Test-ShadowableDisk').text).toContain("@('NTFS', 'ReFS') -contains $_");
  });
});

describe('flush before the EBS request', () => {
  it('writes every shadowed volume cache to disk after the shadow copies exist and before CreateSnapshots', async () => {
    // EC2: a snapshot captures only the data written to the volume when it is requested, not what the
    // operating system still caches; the shadow copies' diff areas are files on each volume.
    const text = documentScript('diskshadow-snapshot');
    const root = (await parsePowerShell(text)).rootNode;
    const sync = functionNamed(root, 'Sync-Volumes').text;
    expect(commands(functionNamed(root, 'Sync-Volumes'), 'Write-VolumeCache').map((c) => c.text)).toEqual(['Write-VolumeCache -Path $volume.DeviceId']);
    expect(sync).toMatch(/foreach \(\$volume in \$Volumes\)/);
    const body = functionNamed(root, 'Invoke-DiskShadowSnapshot').text;
    const created = body.indexOf("$result.vss = 'created'");
    const flush = body.indexOf('Sync-Volumes $volumes');
    const request = body.indexOf('Request-Snapshots $params');
    expect(created).toBeGreaterThan(0);
    expect(flush).toBeGreaterThan(created);
    expect(request).toBeGreaterThan(flush);
  });
});

describe('restore script: the revert', () => {
  const text = documentScript('diskshadow-restore');
  let root: Node;
  beforeAll(async () => {
    root = (await parsePowerShell(text)).rootNode;
  });

  it('refuses, before reverting anything, a shadow copy of the set that is not on a disk of this restore', () => {
    // Two volumes restored from one snapshot, or the source next to its restore, hold shadow copies with
    // the same ids: "revert <id>" alone could revert the other one, even the source's live volume.
    const check = functionNamed(root, 'Assert-ShadowsOnRestoredDisks').text;
    expect(check).toMatch(/\$VolumePaths -notcontains \$_\.VolumeName/);
    expect(check).toMatch(/Group-Object -Property ID/);
    expect(check.match(/Stop-WithFailure 'revert' 'shadow-not-on-disk'/g)).toHaveLength(2);
    const body = functionNamed(root, 'Invoke-DiskShadowRestore').text;
    const order = ['Initialize-RestoreDisk', 'Find-DiskShadows', 'Assert-ShadowsOnRestoredDisks', 'Resolve-DiskShadows', 'Invoke-Revert'].map((s) => body.indexOf(s));
    expect(order.every((i) => i > 0), JSON.stringify(order)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  it('records each revert on the instance right after it, and a re-run skips a disk already reverted to that set', () => {
    const body = functionNamed(root, 'Invoke-DiskShadowRestore').text;
    const revert = body.indexOf('Invoke-Revert $diskshadow $shadow $work');
    const record = body.indexOf('Add-RevertRecord');
    expect(revert).toBeGreaterThan(0);
    expect(record).toBeGreaterThan(revert);
    const resolve = functionNamed(root, 'Resolve-DiskShadows').text;
    const skip = resolve.indexOf("$Record.outcome = 'already-reverted'");
    expect(skip).toBeGreaterThan(0);
    expect(skip).toBeLessThan(resolve.indexOf("'shadow-copy-not-found'"));
    const read = functionNamed(root, 'Get-RevertRecords').text;
    expect(read).toContain('Test-TrustedItem');
    expect(functionNamed(root, 'Get-RevertRecordFile').text).toContain("Get-StateDirectory @('restore')");
  });

  it('keeps other processes off a volume while reverting it, retries VSS_E_VOLUME_IN_USE and gives its drive letters back', () => {
    const fn = functionNamed(root, 'Invoke-Revert').text;
    const remove = fn.indexOf('Remove-PartitionAccessPath');
    const run = fn.indexOf('Start-Process -FilePath $DiskShadow');
    const restore = fn.indexOf('Add-PartitionAccessPath');
    expect(remove).toBeGreaterThan(0);
    expect(run).toBeGreaterThan(remove);
    expect(restore).toBeGreaterThan(run);
    expect(fn).toMatch(/finally \{/);
    expect(fn).toMatch(/VSS_E_VOLUME_IN_USE\|0x8004231D/);
    expect(fn).toMatch(/Stop-WithFailure 'revert' 'revert-volume-in-use'/);
    expect(topLevelLiterals(root).get('RevertTries')).toBeGreaterThan(1);
  });

  it('names a refused context (the revert premise failing) apart from other revert failures', () => {
    const fn = functionNamed(root, 'Invoke-Revert').text;
    expect(fn).toMatch(/VSS_E_UNSUPPORTED_CONTEXT\|0x8004231B/);
    expect(fn).toMatch(/Stop-WithFailure 'revert' 'revert-unsupported'/);
    expect(RESTORE_ERROR_CODES['revert-unsupported']).toBe(false);
  });
});

describe('snapshot script: writer components left out', () => {
  const text = documentScript('diskshadow-snapshot');

  it('recognises what DiskShadow prints for a component outside the shadow copy set', async () => {
    const root = (await parsePowerShell(text)).rootNode;
    const pattern = new RegExp(unquote(topLevelAssignment(root, 'ExcludedComponentPattern').text), 'g');
    const output = [
      'DISKSHADOW> create',
      'Excluding writer "Shadow Copy Optimization Writer", because all of its components have been excluded.',
      'Component "\\TasksStore" from writer "Task Scheduler Writer" is excluded from backup,',
      'because it requires volume C:\\ which is not in the shadow copy set.',
      'Component "\\EC2AMAZ\\MSSQLSERVER\\sales" from writer "SqlServerWriter" is excluded from backup,',
      'because it requires volume L:\\ which is not in the shadow copy set.',
      'Alias vss_v0 for shadow ID {4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f} set as environment variable.',
    ].join('\r\n');
    const found = [...output.matchAll(pattern)].map((m) => m.groups);
    expect(found).toEqual([
      { component: '\\TasksStore', writer: 'Task Scheduler Writer', volume: 'C:\\' },
      { component: '\\EC2AMAZ\\MSSQLSERVER\\sales', writer: 'SqlServerWriter', volume: 'L:\\' },
    ]);
  });

  it('fails the run before the EBS request unless the writer is one of Windows own system-state writers or the volume is out of the set by design', async () => {
    const root = (await parsePowerShell(text)).rootNode;
    const writers = findAll(topLevelAssignment(root, 'OsStateWriters'), (n) => n.type === 'string_literal').map((n) => unquote(n.text));
    expect(writers).toEqual(['System Writer', 'ASR Writer', 'Registry Writer', 'COM+ REGDB Writer', 'WMI Writer', 'Task Scheduler Writer', 'VSS Metadata Store Writer', 'Performance Counters Writer', 'Shadow Copy Optimization Writer', 'BITS Writer']);
    expect(writers).not.toContain('SqlServerWriter');
    const assert = functionNamed(root, 'Assert-NoExcludedComponents').text;
    expect(assert).toMatch(/\(\$OsStateWriters -contains \$component\.Writer\) -or \(\$script:OutOfSetVolumes -contains \$component\.Volume\)/);
    expect(assert).toMatch(/Stop-WithFailure 'vss' 'vss-component-excluded'/);
    const body = functionNamed(root, 'Invoke-DiskShadowSnapshot').text;
    const check = body.indexOf('Assert-NoExcludedComponents $output');
    expect(check).toBeGreaterThan(body.indexOf("$result.vss = 'created'"));
    expect(check).toBeLessThan(body.indexOf('Request-Snapshots $params'));
    expect(SNAPSHOT_ERROR_CODES['vss-component-excluded']).toBe(false);
  });
});

describe('snapshot script: what a killed run leaves behind', () => {
  it('stops a DiskShadow left running from the work folder, and deletes the shadow set its files name before removing them', async () => {
    const text = documentScript('diskshadow-snapshot');
    const root = (await parsePowerShell(text)).rootNode;
    const clear = functionNamed(root, 'Clear-StaleRuns').text;
    const order = ["Name = 'diskshadow.exe'", 'Stop-ProcessTree', "'shadow-set.txt'", "'diskshadow.out'", 'Find-ShadowSetId $text', 'Remove-TreeSafely $stale.FullName', 'Set-PendingSets $PendingFile'].map((s) => clear.indexOf(s));
    expect(order.every((i) => i > 0), JSON.stringify(order)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    const body = functionNamed(root, 'Invoke-DiskShadowSnapshot').text;
    expect(body.indexOf('Clear-StaleRuns $workRoot $pendingFile')).toBeLessThan(body.indexOf('Remove-StaleShadowSets $pendingFile'));
    expect(body.indexOf('Enter-RunLock')).toBeLessThan(body.indexOf('Clear-StaleRuns'));
  });

});

describe('self-test document', () => {
  const text = documentScript('selftest');

  it('uses the exit and error codes the driver knows, and the keys of its result line', async () => {
    const { SELFTEST_ERROR_CODES, SELFTEST_EXIT_CODES, SelfTestLine } = await import('../src/selftest/result.ts');
    const tree = await parsePowerShell(text);
    const table = (name: string): Record<string, string> => Object.fromEntries(hashEntries(topLevelAssignment(tree.rootNode, name)).map((e) => [e.key, e.value.text.trim()]));
    expect(Object.fromEntries(Object.entries(table('ExitCodes')).map(([k, v]) => [k, Number(v)]))).toEqual(SELFTEST_EXIT_CODES);
    expect(Object.fromEntries(Object.entries(table('FailureRetryable')).map(([k, v]) => [k, v.toLowerCase() === '$true']))).toEqual(SELFTEST_ERROR_CODES);
    expect(hashEntries(functionNamed(tree.rootNode, 'New-ResultObject')).map((e) => e.key).sort()).toEqual(Object.keys(SelfTestLine.shape).sort());
    for (const call of commands(tree.rootNode, 'Stop-WithFailure').filter((c) => ancestor(c, 'function_statement') && !readScript(PRELUDE_SCRIPT).includes(ancestor(c, 'function_statement')?.text ?? ''))) {
      const [stage, code] = commandArguments(call);
      expect(Object.keys(SELFTEST_EXIT_CODES).some((k) => k.startsWith(`${unquote(stage ?? '')}-`)), call.text).toBe(true);
      expect(Object.keys(SELFTEST_ERROR_CODES), call.text).toContain(unquote(code ?? ''));
    }
  });

  it('reads back exactly the lines and pages its workload writes', async () => {
    const { createHash } = await import('node:crypto');
    const root = (await parsePowerShell(text)).rootNode;
    const literals = topLevelLiterals(root);
    const hash = (s: string) => createHash('sha256').update(s, 'ascii').digest('hex');
    const workload = functionNamed(root, 'Get-WorkloadLines').text;
    // The workload's formats, as written in its script ...
    expect(workload).toContain(`'  $body = "seq=$seq utc=$utc prev=$previous"'`);
    expect(workload).toContain(`'  $line = [System.Text.Encoding]::ASCII.GetBytes("$body hash=$hash\`r\`n")'`);
    expect(workload).toContain(`'  $record = "page=$page seq=$seq utc=$utc"'`);
    expect(workload).toContain(`'  $record = "$record hash=$(Get-TextHash $record)"'`);
    // ... match the patterns the readers use.
    const utc = '2026-11-28T01:00:05.120Z';
    const body = `seq=1 utc=${utc} prev=${'0'.repeat(64)}`;
    expect(new RegExp(String(literals.get('JournalLinePattern'))).test(`${body} hash=${hash(body)}`)).toBe(true);
    const record = `page=1 seq=1 utc=${utc}`;
    const page = `${record} hash=${hash(record)}`.padEnd(Number(literals.get('PageBytes')) - 2, '.');
    expect(new RegExp(String(literals.get('PagePattern'))).test(page)).toBe(true);
    // Written through to disk, outliving the command (a scheduled task as SYSTEM).
    expect(workload).toContain('[System.IO.FileOptions]::WriteThrough');
    expect(functionNamed(root, 'Start-Workload').text).toMatch(/New-ScheduledTaskPrincipal -UserId 'S-1-5-18'/);
  });

  it('finds in the snapshot log the two times the driver compares the journal with', async () => {
    const { diskShadowTimeline } = await import('../src/selftest/checks.ts');
    const root = (await parsePowerShell(documentScript('diskshadow-snapshot'))).rootNode;
    const body = functionNamed(root, 'Invoke-DiskShadowSnapshot').text;
    const created = body.indexOf('Write-Log "Shadow copy set $setId created for $($volumes.Count) volume(s); writers have resumed."');
    expect(created).toBeGreaterThan(0);
    expect(created).toBeLessThan(body.indexOf('Request-Snapshots $params'));
    const request = functionNamed(root, 'Request-Snapshots').text;
    expect(request.indexOf("Write-Log 'Requesting the EBS snapshots (CreateSnapshots).'")).toBeLessThan(request.indexOf('New-EC2SnapshotBatch'));
    expect(functionNamed((await parsePowerShell(readScript(PRELUDE_SCRIPT))).rootNode, 'Write-Log').text).toContain("ToString('yyyy-MM-ddTHH:mm:ss.fffZ')");
    // As Write-Log prints them.
    const log = `2026-11-28T01:00:05.120Z Shadow copy set 4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f created for 2 volume(s); writers have resumed.\r\n2026-11-28T01:00:07.480Z Requesting the EBS snapshots (CreateSnapshots).`;
    expect(diskShadowTimeline(log)).toEqual({ createdAt: '2026-11-28T01:00:05.120Z', requestedAt: '2026-11-28T01:00:07.480Z' });
  });

  it('reads parameters as the document declares them', async () => {
    const literals = topLevelLiterals((await parsePowerShell(text)).rootNode);
    const params = DOCUMENTS.selftest.parameters;
    expect(literals.get('ActionPattern')).toBe(`^(${params.Action.allowedValues.join('|')})$`);
    expect(literals.get('DriveLetterPattern')).toBe(params.DataDrive.allowedPattern);
    expect(literals.get('OptionalVolumeIdsPattern')).toBe(params.VolumeIds.allowedPattern);
    expect(literals.get('WindowPattern')).toBe(params.Window.allowedPattern);
    expect(literals.get('OptionalGuidPattern')).toBe(params.ShadowSetId.allowedPattern);
  });
});
