import { validateRestoreInput } from '../lib/restore/validate.ts';

/** Restore state "Validate Input". */
export const handler = async (event: unknown) => validateRestoreInput(event);
