/**
 * Docs that stay true: links resolve inside the repository, the formats a user needs are documented here
 * (not in a file a clone does not have), the numbers in docs/deploy.md are the packaged template's, the exit
 * codes in the README are the ones the CLI prints, and package.json `engines` is what the runtime
 * dependencies really need.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODE_TABLE } from '../src/cli/exit-codes.ts';
import { buildReport } from '../src/lib/report.ts';
import type { RunState } from '../src/lib/run-state.ts';
import { BEHAVIOURS, FleetSchema } from '../src/local/fleet.ts';
import { packageStack } from './moto-stack.ts';

/** A run state as the tests write it: without fields only some versions of the workflow keep (the wave). */
const runState = (state: Omit<RunState, 'wave'>): RunState => state as RunState;

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');
const MARKDOWN = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
const anchorOf = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
const anchorsIn = (text: string) => new Set(text.split('\n').filter((l) => /^#{1,6} /.test(l)).map((l) => anchorOf(l.replace(/^#+ /, ''))));

describe('links', () => {
  it.each(MARKDOWN)('%s links only to files and headings inside the repository', (file) => {
    const text = read(file).replace(/```[\s\S]*?```/g, '');
    const broken: string[] = [];
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!target) continue;
      if (/^[a-z]+:/i.test(target)) {
        broken.push(`${target}: a link outside the repository`);
        continue;
      }
      const [pathPart, anchor] = target.split('#') as [string, string | undefined];
      const resolved = pathPart ? path.resolve(path.dirname(path.join(ROOT, file)), pathPart) : path.join(ROOT, file);
      if (!resolved.startsWith(`${ROOT}${path.sep}`)) broken.push(`${target}: outside the repository`);
      else if (!existsSync(resolved)) broken.push(`${target}: no such file`);
      else if (anchor && resolved.endsWith('.md') && !anchorsIn(readFileSync(resolved, 'utf8')).has(anchor)) broken.push(`${target}: no such heading`);
    }
    expect(broken).toEqual([]);
    expect(read(file)).not.toMatch(/\.\.\/shared\b/);
  });
});

describe('formats documented in the repository', () => {
  it('docs/fleet-file.md names every field and behaviour the fleet file accepts', () => {
    const doc = read('docs/fleet-file.md');
    const instanceKeys = Object.keys((FleetSchema.shape.instances.element as unknown as { shape: Record<string, unknown> }).shape);
    const missing = [...instanceKeys, ...Object.keys(FleetSchema.shape), ...BEHAVIOURS].filter((key) => !doc.includes(`\`${key}\``));

    expect(missing).toEqual([]);
    expect(read('README.md')).toContain('[docs/fleet-file.md](docs/fleet-file.md)');
  });

  it('docs/report.md names every field of a run report', () => {
    const doc = read('docs/report.md');
    const report = buildReport(
      runState({
        runId: '20261128T000000Z-00000000',
        executionArn: 'arn',
        startedAt: '2026-11-28T00:00:00.000Z',
        dryRun: false,
        selector: { tagKey: 'ConsistentSnapshot', tagValue: 'WindowsVSS', instanceIds: ['i-00000001'] },
        options: { method: 'aws-vss', excludeBootVolume: false, maxAttempts: 3 },
        notFound: ['i-00000002'],
        commands: [],
        instances: [{ instanceId: 'i-00000001', name: 'a', volumes: [], phase: 'failed', attempts: 1, code: 'vss-timeout', detail: 'd', reason: 'r', snapshots: [{ snapshotId: 's', volumeId: 'v', device: 'd', state: 'completed' }] }],
      }),
      '2026-11-28T01:00:00.000Z',
      's3://b/k',
    );
    const keys = new Set<string>();
    const collect = (value: unknown) => {
      if (Array.isArray(value)) value.forEach(collect);
      else if (value && typeof value === 'object') {
        for (const [key, inner] of Object.entries(value)) {
          keys.add(key);
          collect(inner);
        }
      }
    };
    collect(report);

    expect([...keys, 'finishedAt', 'fallbackSnapshots'].filter((key) => !doc.includes(`"${key}"`))).toEqual([]);
    expect(read('README.md')).toContain('[docs/report.md](docs/report.md)');
  });
});

describe('README', () => {
  it('shows the exit codes every command prints in its usage', () => {
    expect(read('README.md')).toContain(`\`\`\`\n${EXIT_CODE_TABLE}\n\`\`\``);
  });

  it('has the operator\'s path from the alert to the retry', () => {
    const readme = read('README.md');
    const section = readme.slice(readme.indexOf('## Operating the deployed stack'));

    expect(section).toMatch(/vss-snapshots report latest/);
    expect(section).toMatch(/vss-snapshots retry-failed latest --follow/);
  });
});

describe('docs/deploy.md', () => {
  let counts: Map<string, number>;
  beforeAll(async () => {
    const template = await packageStack();
    counts = new Map();
    for (const resource of Object.values(template.Resources)) counts.set(resource.Type, (counts.get(resource.Type) ?? 0) + 1);
  }, 120_000);

  it.each([
    ['Lambda functions', 'AWS::Lambda::Function'],
    ['state machines', 'AWS::StepFunctions::StateMachine'],
    ['SSM documents', 'AWS::SSM::Document'],
    ['alarms', 'AWS::CloudWatch::Alarm'],
  ])('says how many %s the template creates', (words, type) => {
    const said = new RegExp(`([0-9]+) ${words}`).exec(read('docs/deploy.md'))?.[1];

    expect(Number(said), `docs/deploy.md: "${said} ${words}"`).toBe(counts.get(type));
  });

  it('says how to get AWS credentials and how to tag an instance', () => {
    const deploy = read('docs/deploy.md');

    expect(deploy).toMatch(/^## AWS credentials$/m);
    expect(deploy).toMatch(/aws ec2 create-tags --resources i-[0-9a-f]+ /);
  });
});

describe('package.json engines', () => {
  const pkg = JSON.parse(read('package.json')) as { engines: { node: string } };
  const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { dev?: boolean; devOptional?: boolean; optional?: boolean; version?: string; engines?: { node?: string } | string[] }> };

  it('asks for no Node.js version that a runtime dependency declares it does not support', () => {
    const conflicts: string[] = [];
    for (const [where, info] of Object.entries(lock.packages)) {
      if (!where || info.dev || info.devOptional) continue;
      const wanted = !Array.isArray(info.engines) ? info.engines?.node : undefined;
      if (wanted && !semver.subset(pkg.engines.node, wanted)) conflicts.push(`${where.replace(/^.*node_modules\//, '')}@${info.version} wants node ${wanted}`);
    }

    expect(conflicts).toEqual([]);
  });

  it('leaves out Node.js 20, past its end of life (April 2026), and the README and deploy guide say the same', () => {
    const floor = semver.minVersion(pkg.engines.node)?.major;

    expect(semver.satisfies('20.20.0', pkg.engines.node)).toBe(false);
    expect(read('README.md')).toContain(`Node.js ${floor} or later`);
    expect(read('docs/deploy.md')).toContain(`Node.js ${floor} or later`);
  });
});
