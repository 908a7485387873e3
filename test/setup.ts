// Test-wide setup: a fixed region and placeholder credentials so no SDK client ever looks for real ones,
// and the Lambda environment the handlers read (the simulated account's topic and bucket).
process.env.AWS_REGION ??= 'us-east-1';
process.env.AWS_ACCESS_KEY_ID ??= 'test';
process.env.AWS_SECRET_ACCESS_KEY ??= 'test';
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
process.env.AWS_SDK_JS_SUPPRESS_NODE_VERSION_WARNING ??= '1';

// The SDK's notice about its future Node 22 requirement (the suite runs on Node 20; Lambda on nodejs22.x)
// would otherwise be printed once per test file.
const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const text = typeof warning === 'string' ? warning : warning.message;
  if (/require node >=22/.test(text)) return;
  emitWarning(warning, ...rest);
}) as typeof process.emitWarning;
