/**
 * KMS keys of the simulated account, as EBS uses them. Keys are Regional: "The specified KMS key must exist in
 * the Region that the snapshot is being copied to" (EC2 API reference, CopySnapshot, KmsKeyId). A key is named
 * by key id, key ARN, alias name (`alias/…`) or alias ARN (same page). The AWS managed key `alias/aws/ebs` is
 * every Region's default EBS key and is always usable here (AWS managed keys cannot be disabled or scheduled for
 * deletion; KMS developer guide, "AWS managed keys").
 *
 * To use a customer managed key EBS needs `kms:CreateGrant`, `kms:Decrypt`, `kms:DescribeKey`,
 * `kms:GenerateDataKeyWithoutPlaintext` and `kms:ReEncrypt*` on it (EBS user guide, "Requirements for Amazon EBS
 * encryption"). The fleet file's key states model what goes wrong: `disabled`, `pending-deletion`, and
 * `no-grant` (enabled, but the key policy does not allow those actions). EBS checks the key only once the copy
 * runs: "If you specify an ID, alias, or ARN that is not valid, the action can appear to complete, but
 * eventually fails" (CopySnapshot, KmsKeyId) — see snapshot-copy.ts.
 */
import { ACCOUNT_ID } from './world.ts';
import type { SimKmsKey, World } from './world.ts';

export const DEFAULT_EBS_KEY_ALIAS = 'alias/aws/ebs';

/** A deterministic key id (UUID form) from a Region and a seed text. */
export function keyIdFor(region: string, seed: string): string {
  let h = 2166136261;
  for (const ch of `${region}/${seed}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  const hex = (n: number) => (Math.imul(h ^ n, 2654435761) >>> 0).toString(16).padStart(8, '0');
  const all = hex(1) + hex(2) + hex(3) + hex(4);
  return `${all.slice(0, 8)}-${all.slice(8, 12)}-4${all.slice(13, 16)}-a${all.slice(17, 20)}-${all.slice(20, 32)}`;
}

export const keyArn = (region: string, keyId: string) => `arn:aws:kms:${region}:${ACCOUNT_ID}:key/${keyId}`;

/** The AWS managed EBS key of a Region. */
export function defaultEbsKey(region: string): SimKmsKey {
  return { region, keyId: keyIdFor(region, DEFAULT_EBS_KEY_ALIAS), aliases: [DEFAULT_EBS_KEY_ALIAS], state: 'enabled' };
}

/** What a key reference resolves to in `region`: the key, or why it names none there. */
export type KeyLookup = { key: SimKmsKey } | { problem: string };

/** Resolves a KmsKeyId as EBS would in `region` (key id, key ARN, alias name, alias ARN). */
export function resolveKey(world: World, region: string, reference: string): KeyLookup {
  const arn = /^arn:aws:kms:([a-z0-9-]+):([0-9]{12}):(key|alias)\/(.+)$/.exec(reference);
  if (arn) {
    const [, keyRegion, account, kind, name] = arn as unknown as [string, string, string, string, string];
    if (keyRegion !== region) return { problem: `The KMS key ${reference} is in ${keyRegion}; a key must be in the destination Region ${region}.` };
    if (account !== ACCOUNT_ID) return { problem: `The KMS key ${reference} belongs to another account and does not allow this one to use it.` };
    return resolveKey(world, region, kind === 'alias' ? `alias/${name}` : name);
  }
  const keys = [defaultEbsKey(region), ...world.kmsKeys.filter((k) => k.region === region)];
  const key = reference.startsWith('alias/') ? keys.find((k) => k.aliases.includes(reference)) : keys.find((k) => k.keyId === reference);
  return key ? { key } : { problem: `The KMS key ${reference} does not exist in ${region}.` };
}

/** Why EBS cannot use the key (undefined: it can). */
export function unusable(key: SimKmsKey): string | undefined {
  const arn = keyArn(key.region, key.keyId);
  switch (key.state) {
    case 'enabled':
      return undefined;
    case 'disabled':
      return `The KMS key ${arn} is disabled.`;
    case 'pending-deletion':
      return `The KMS key ${arn} is pending deletion.`;
    case 'no-grant':
      return `The KMS key ${arn} does not allow Amazon EBS to use it: kms:CreateGrant, kms:Decrypt, kms:DescribeKey, kms:GenerateDataKeyWithoutPlaintext and kms:ReEncrypt* are required.`;
  }
}

/** The key of an encrypted volume or snapshot (by its ARN), as it stands now. */
export function keyByArn(world: World, arn: string): KeyLookup {
  const region = /^arn:aws:kms:([a-z0-9-]+):/.exec(arn)?.[1];
  return region ? resolveKey(world, region, arn) : { problem: `The KMS key ${arn} is not a key ARN.` };
}
