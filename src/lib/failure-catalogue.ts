/**
 * Every reason an instance can end without a snapshot, with whether another attempt can help and what
 * an operator should do. One table, so the report, the alert and the retry decision always agree.
 */
export interface FailureKind {
  /** Another attempt after the retry delay can plausibly succeed. */
  retryable: boolean;
  /** Short heading used to group instances in the alert. */
  title: string;
  /** What the operator should do about it. */
  action: string;
  /** `skipped` by design rather than `failed`. */
  skip?: boolean;
}

export const FAILURES = {
  stopped: {
    retryable: false,
    skip: true,
    title: 'Instance not running',
    action: 'No snapshot is taken of an instance that is not running. Start it, or remove the selection tag if it should not be backed up.',
  },
  'not-windows': {
    retryable: false,
    skip: true,
    title: 'Not a Windows instance',
    action: 'VSS snapshots need Windows. Remove the selection tag, or back this instance up another way.',
  },
  'no-ebs': {
    retryable: false,
    skip: true,
    title: 'No EBS volume attached',
    action: 'There is nothing to snapshot (instance-store only). Remove the selection tag.',
  },
  'not-managed': {
    retryable: false,
    title: 'Not managed by SSM',
    action: 'Install and start the SSM Agent and attach an instance profile with AmazonSSMManagedInstanceCore; the instance must appear in Fleet Manager.',
  },
  'agent-offline': {
    retryable: false,
    title: 'SSM Agent offline',
    action: 'Check that the instance is healthy, the AmazonSSMAgent service is running and it can reach the SSM endpoints (VPC endpoints or NAT), then start a run for it from the console.',
  },
  'send-rejected': {
    retryable: true,
    title: 'SSM rejected the command for this instance',
    action: 'SSM answered InvalidInstanceId: the agent stopped or the instance changed state between discovery and sending. Check the agent; it was retried.',
  },
  'access-denied': {
    retryable: false,
    title: 'Access denied',
    action:
      "The stack's IAM lets the workflow send the snapshot document only to instances carrying its selector tag (deploy parameters tagKey/tagValue). Tag the instance with it, or run with the deployed tag; if the instance has the tag, check the role's ssm:SendCommand policy and the document.",
  },
  'invalid-platform': {
    retryable: false,
    title: 'Document not valid for this platform',
    action: 'The SSM document cannot run on this operating system. Check the instance really is Windows, or remove the selection tag.',
  },
  undeliverable: {
    retryable: true,
    title: 'Command never reached the SSM Agent',
    action: 'The agent did not pick up the command (Undeliverable/DeliveryTimedOut). Check the agent service and its network path to SSM.',
  },
  'execution-timeout': {
    retryable: true,
    title: 'Snapshot command timed out',
    action: 'The command ran past its execution timeout (VSS under heavy load?). Check the instance for I/O pressure or a stuck VSS writer (vssadmin list writers).',
  },
  'no-result': {
    retryable: true,
    title: 'No result before the deadline',
    action: 'The command was still not final at the workflow deadline and was cancelled. Check the SSM Agent and the Run Command history of the instance.',
  },
  'ssm-rate-exceeded': {
    retryable: true,
    title: 'SSM cancelled the command before it ran (Rate Exceeded)',
    action:
      "The account's limit for pending Run Command invocations was exceeded, so SSM cancelled the command without running it. It is retried after the retry delay; if it persists, look for other Run Command users in the account at this time, or lower SEND_SLICE_INSTANCES.",
  },
  'command-cancelled': {
    retryable: false,
    title: 'Command cancelled',
    action: 'Someone or something cancelled the snapshot command. Start a new run for this instance from the console if it still needs a snapshot.',
  },
  'command-terminated': {
    retryable: true,
    title: 'Command terminated before it ran',
    action: 'SSM stopped delivering the command (error threshold). This should not happen with the configured MaxErrors; report it as a bug.',
  },
  'vss-timeout': {
    retryable: true,
    title: 'VSS freeze timed out',
    action: 'Windows allows 10 s for the VSS freeze. Reduce I/O at snapshot time (move the schedule, pause antivirus scans) and check EC2 API throttling on the account.',
  },
  'vss-writer-retryable': {
    retryable: true,
    title: 'VSS writer failed (retryable)',
    action: 'A VSS writer reported a transient error; Microsoft advises waiting about 10 minutes before retrying. Check `vssadmin list writers` if it persists.',
  },
  'vss-writer-nonretryable': {
    retryable: false,
    title: 'VSS writer failed (non-retryable)',
    action: 'Run `vssadmin list writers` on the instance, restart the service of the failed writer (SQL Server, Exchange, ...) and check the Application event log, then start a run for it.',
  },
  'vss-component-excluded': {
    retryable: false,
    title: 'VSS writer component left out of the backup (DiskShadow)',
    action:
      'DiskShadow left a writer component (a database, ...) out because one of its files is on a volume outside the shadow copy set, so its files in the snapshots would not be consistent. The reason names the component and the volume: give that volume a drive letter or mount point (NTFS/ReFS), keep ExcludeBootVolume false, or move the files.',
  },
  'vss-in-progress': {
    retryable: true,
    title: 'Another VSS backup was running',
    action: 'Another backup tool held VSS (VSS_E_SNAPSHOT_SET_IN_PROGRESS). Stagger the schedules so they do not overlap.',
  },
  'vss-insufficient-storage': {
    retryable: false,
    title: 'Not enough shadow copy storage',
    action: 'Free disk space or enlarge the shadow storage (vssadmin resize shadowstorage), then start a run for it.',
  },
  'language-mode': {
    retryable: false,
    title: 'PowerShell not in FullLanguage mode',
    action: 'The snapshot script needs PowerShell FullLanguage mode; adjust the AppLocker/WDAC policy for the SSM Agent.',
  },
  'package-missing': {
    retryable: false,
    title: 'AwsVssComponents not installed',
    action: 'Install the AwsVssComponents package (SSM document AWS-ConfigureAWSPackage) or choose the diskshadow method.',
  },
  'script-failed': {
    retryable: true,
    title: 'Snapshot command failed',
    action: 'The snapshot script exited with an error. Read its output in Run Command history (or CloudWatch Logs) for the instance.',
  },
  'no-snapshots': {
    retryable: true,
    title: 'Command succeeded but no snapshot of this run was found',
    action: "The script reported success, yet not every volume has a snapshot tagged with this run. Check the instance role's ec2:CreateSnapshots/ec2:CreateTags permissions and the document's tags.",
  },
  'crash-consistent': {
    retryable: true,
    title: 'Snapshot only crash-consistent',
    action:
      'The snapshots are not marked consistent (AppConsistent=true for aws-vss, vss-snapshots:consistency=after-revert for diskshadow): VSS did not complete. Check the VSS writers, and the AwsVssComponents logs (C:\\ProgramData\\Amazon\\AwsVss\\Logs) or the DiskShadow output in Run Command history.',
  },
  'snapshot-error': {
    retryable: true,
    title: 'Snapshot failed in EBS',
    action: 'EBS put a snapshot of this run into state error. Check the volume and the account snapshot quotas.',
  },
  'snapshot-timeout': {
    retryable: false,
    title: 'Snapshot still pending at the deadline',
    action: 'EBS had not completed the snapshot by the deadline (a first full snapshot can take hours). It may still complete; check it in the EC2 console before relying on it.',
  },
  'unshadowed-disk': {
    retryable: false,
    title: 'Disk without a shadowable volume (DiskShadow)',
    action:
      'A disk of the instance holds no NTFS/ReFS volume with a drive letter or mount point, and its EBS volume id cannot be read (Xen instance), so its snapshot could not be told apart from those holding shadow copies. Give it such a volume, detach it, or use the aws-vss method.',
  },
  'concurrent-snapshot-limit': {
    retryable: false,
    title: 'Too many pending snapshots on a volume',
    action: 'A volume already had the maximum number of pending snapshots (ConcurrentSnapshotLimitExceeded). Let earlier snapshots complete; consider a later schedule.',
  },
} as const satisfies Record<string, FailureKind>;

export type FailureCode = keyof typeof FAILURES;

export function failureKind(code: string): FailureKind {
  return (FAILURES as Record<string, FailureKind>)[code] ?? FAILURES['script-failed'];
}
