/**
 * Memory, architecture and timeout of each Lambda, as the deployment sets them: read from serverless.yml
 * (provider defaults, then per function) so the benchmark's GB-seconds follow the deploy config. Falls
 * back to DEFAULT_LAMBDA (prices.ts) when the file is absent or unreadable, and says so.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { DEFAULT_LAMBDA } from './prices.ts';

export interface FunctionSettings {
  memoryMb: number;
  architecture: string;
  timeoutSeconds: number;
}

export interface LambdaSettings {
  /** Where the figures come from: `serverless.yml` or `default (prices.ts)`. */
  source: string;
  provider: FunctionSettings;
  /** By the ASL placeholder's key, e.g. `SendSnapshotCommands` for `${SendSnapshotCommandsFunctionArn}`. */
  functions: Record<string, FunctionSettings>;
}

const SERVERLESS_YML = new URL('../../serverless.yml', import.meta.url);

export function lambdaSettings(file: URL | string = SERVERLESS_YML): LambdaSettings {
  const fallback: LambdaSettings = { source: 'default (src/bench/prices.ts)', provider: { ...DEFAULT_LAMBDA }, functions: {} };
  let doc: unknown;
  try {
    // Tags like !Sub and !GetAtt are kept as plain values: only numbers and names are read here.
    doc = parse(readFileSync(file, 'utf8'), { logLevel: 'silent', strict: false });
  } catch {
    return fallback;
  }
  const root = (doc ?? {}) as { provider?: Record<string, unknown>; functions?: Record<string, Record<string, unknown>> };
  const provider: FunctionSettings = {
    memoryMb: positive(root.provider?.memorySize) ?? DEFAULT_LAMBDA.memoryMb,
    architecture: typeof root.provider?.architecture === 'string' ? root.provider.architecture : 'x86_64',
    timeoutSeconds: positive(root.provider?.timeout) ?? 6,
  };
  const functions: Record<string, FunctionSettings> = {};
  for (const [name, fn] of Object.entries(root.functions ?? {})) {
    const key = name.charAt(0).toUpperCase() + name.slice(1);
    functions[key] = {
      memoryMb: positive(fn?.memorySize) ?? provider.memoryMb,
      architecture: typeof fn?.architecture === 'string' ? fn.architecture : provider.architecture,
      timeoutSeconds: positive(fn?.timeout) ?? provider.timeoutSeconds,
    };
  }
  return { source: 'serverless.yml', provider, functions };
}

export function settingsFor(settings: LambdaSettings, functionKey: string): FunctionSettings {
  return settings.functions[functionKey] ?? settings.provider;
}

function positive(value: unknown): number | undefined {
  const n = typeof value === 'string' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined;
}
