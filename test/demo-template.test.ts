/**
 * The try-it stack (demo/try-it.yaml): cfn-lint clean, and what it promises in its description checked in
 * the template itself - no way in but Systems Manager, IMDSv2 only, the main stack's instance policy, the
 * selector tag, a data volume, encrypted disks, and the endpoints the Windows side needs.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Tags } from 'yaml';

const run = promisify(execFile);
const FILE = path.join(import.meta.dirname, '..', 'demo', 'try-it.yaml');

/** CloudFormation's short forms as the long ones (!Ref x -> {Ref: x}). */
const SHORT_FORMS = ['Ref', 'Sub', 'GetAtt', 'Select', 'GetAZs', 'Equals', 'If', 'Not', 'Join', 'Base64', 'ImportValue', 'Split', 'FindInMap'];
const customTags: Tags = SHORT_FORMS.flatMap((name) => {
  const key = name === 'Ref' ? 'Ref' : `Fn::${name}`;
  return [
    { tag: `!${name}`, resolve: (value: string) => ({ [key]: name === 'GetAtt' ? value.split('.') : value }) },
    { tag: `!${name}`, collection: 'seq' as const, resolve: (seq: { toJSON: () => unknown }) => ({ [key]: seq.toJSON() }) },
  ];
}) as unknown as Tags;

type Resource = { Type: string; Properties?: Record<string, unknown> };
const template = parse(readFileSync(FILE, 'utf8'), { customTags }) as { Parameters: Record<string, { Default?: string }>; Resources: Record<string, Resource>; Outputs: Record<string, { Value: unknown }> };
const ofType = (type: string) => Object.entries(template.Resources).filter(([, r]) => r.Type === type);

const cfnLintInstalled = await run('cfn-lint', ['--version']).then(
  () => true,
  () => false,
);

describe('try-it stack', () => {
  it.skipIf(!cfnLintInstalled)('is cfn-lint clean', async () => {
    const result = await run('cfn-lint', [FILE]).then(
      (r) => ({ code: 0, output: r.stdout + r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
    );
    expect(result.output.trim()).toBe('');
    expect(result.code).toBe(0);
  });

  it('opens no way in: no inbound rule to the instance, no public address, no internet gateway or NAT', () => {
    expect(ofType('AWS::EC2::InternetGateway')).toEqual([]);
    expect(ofType('AWS::EC2::NatGateway')).toEqual([]);
    expect(ofType('AWS::EC2::EIP')).toEqual([]);
    expect(ofType('AWS::EC2::SecurityGroupIngress')).toEqual([]);
    expect(ofType('AWS::EC2::Route')).toEqual([]);
    const instanceGroup = template.Resources.InstanceSecurityGroup?.Properties ?? {};
    expect(instanceGroup.SecurityGroupIngress).toBeUndefined();
    for (const [, subnet] of ofType('AWS::EC2::Subnet')) expect(subnet.Properties?.MapPublicIpOnLaunch).toBe(false);
    // The endpoints accept HTTPS from the instance's group only.
    const endpointIngress = template.Resources.EndpointSecurityGroup?.Properties?.SecurityGroupIngress as Record<string, unknown>[];
    expect(endpointIngress).toEqual([expect.objectContaining({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443, SourceSecurityGroupId: { Ref: 'InstanceSecurityGroup' } })]);
    const egress = instanceGroup.SecurityGroupEgress as Record<string, unknown>[];
    for (const rule of egress) expect(rule).toMatchObject({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443 });
  });

  it('reaches Systems Manager, EC2, CloudWatch Logs and S3 through VPC endpoints', () => {
    const services = ofType('AWS::EC2::VPCEndpoint').map(([, e]) => JSON.stringify(e.Properties?.ServiceName).replace(/.*\$\{AWS::Region\}\.([a-z0-9]+).*/, '$1'));
    expect(services.sort()).toEqual(['ec2', 'ec2messages', 'logs', 's3', 'ssm', 'ssmmessages']);
    for (const [, e] of ofType('AWS::EC2::VPCEndpoint').filter(([, x]) => x.Properties?.VpcEndpointType === 'Interface')) expect(e.Properties?.PrivateDnsEnabled).toBe(true);
  });

  it('runs one tagged Windows Server 2022 instance with IMDSv2 only, the main stack policy, and an encrypted data volume', () => {
    expect(template.Parameters.ImageId?.Default).toBe('/aws/service/ami-windows-latest/Windows_Server-2022-English-Full-Base');
    const instances = ofType('AWS::EC2::Instance');
    expect(instances).toHaveLength(1);
    const props = (instances[0] as [string, Resource])[1].Properties ?? {};
    expect(props.MetadataOptions).toMatchObject({ HttpTokens: 'required' });
    expect(props.Tags).toEqual(expect.arrayContaining([{ Key: { Ref: 'TagKey' }, Value: { Ref: 'TagValue' } }]));
    const disks = props.BlockDeviceMappings as { DeviceName: string; Ebs: { Encrypted: boolean } }[];
    expect(disks.map((d) => d.DeviceName)).toEqual(['/dev/sda1', 'xvdf']);
    for (const d of disks) expect(d.Ebs.Encrypted).toBe(true);
    const role = template.Resources.InstanceRole?.Properties ?? {};
    expect(role.ManagedPolicyArns).toEqual([{ 'Fn::Sub': 'arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore' }, { Ref: 'WindowsInstancePolicyArn' }]);
    expect(role.Policies).toBeUndefined();
    expect(template.Parameters.TagKey?.Default).toBe('ConsistentSnapshot');
    expect(template.Parameters.TagValue?.Default).toBe('WindowsVSS');
  });

  it('says how to reach the instance and run the self-test', () => {
    expect(JSON.stringify(template.Outputs.SessionManager?.Value)).toContain('aws ssm start-session');
    expect(JSON.stringify(template.Outputs.SelfTest?.Value)).toContain('vss-snapshots selftest --instance');
  });
});
