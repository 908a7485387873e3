/**
 * The DiskShadow method: this project's own SSM document built from src/scripts. The Windows issue
 * completes it; until then it sends the run id and attempt and reads failures like the AWS document.
 */
import { diagnoseVssOutput } from './aws-vss.ts';
import type { CommandContext, Diagnosis, InvocationResult, MethodDriver } from './types.ts';

export const diskShadow: MethodDriver = {
  method: 'diskshadow',
  parameters(ctx: CommandContext): Record<string, string[]> {
    return {
      RunId: [ctx.runId],
      Attempt: [String(ctx.attempt)],
      ExcludeBootVolume: [ctx.excludeBootVolume ? 'True' : 'False'],
      executionTimeout: [String(ctx.commandTimeoutSeconds)],
    };
  },
  diagnose(result: InvocationResult): Diagnosis {
    return diagnoseVssOutput(result.output, result.responseCode);
  },
};
