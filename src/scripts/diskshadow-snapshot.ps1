<#
.SYNOPSIS
  vss-snapshots, method "diskshadow": EBS snapshots of this instance that can be made application-consistent
  by reverting to the DiskShadow shadow copy they contain.

.DESCRIPTION
  The only step of the vss-snapshots DiskShadow snapshot document (SSM Command document, schema 2.2,
  aws:runPowerShellScript), built from this file by src/documents/build-documents.ts.

  Parameters arrive as environment variables (interpolationType ENV_VAR, SSM Agent 3.3.2746.0 or later);
  the document, the Lambda and this script check each against the same anchored pattern:
    SSM_RunId              run id, for example 20261128T000000Z-3f2a9c1e
    SSM_Attempt            1 to 5
    SSM_ExcludeBootVolume  True | False
    SSM_CopyOnly           True | False (True: a VSS copy backup, without begin/end backup)

  What happens:
    1. Instance id and region from the instance metadata service, IMDSv2 (session token) only.
    2. DiskShadow: set context persistent, begin backup, add volume (every fixed NTFS/ReFS volume with a
       drive letter or mount point on an EBS disk; not the boot disk when ExcludeBootVolume is True),
       create. The VSS writers freeze and thaw inside "create".
    3. Still inside the DiskShadow session (its "exec" step), ONE CreateSnapshots call for the instance
       (New-EC2SnapshotBatch), tagged on create with the run id, attempt, instance id, method, shadow set id
       and vss-snapshots:consistency=after-revert. Only reached when "create" succeeded.
    4. "end backup" (writers are told the backup completed) only once the EBS request was accepted;
       otherwise DiskShadow exits without it and VSS aborts the backup for the writers.
    5. finally: the shadow copies of this run are deleted, the work files removed, the result line printed.

  Consistency semantics (why restore must revert): the writers resume writing as soon as "create" returns,
  so the EBS snapshots, requested a few seconds later, hold a crash-consistent image of each volume that
  CONTAINS the application-consistent shadow copy (persistent shadow copies live in the volume's own
  "System Volume Information" diff area). The EBS point in time is fixed when CreateSnapshots is accepted,
  so deleting the shadow copies afterwards does not remove them from the snapshots. A volume created from
  such a snapshot is consistent only after it is reverted to that shadow copy (diskshadow-restore.ps1).
  So these snapshots never carry AppConsistent=true, which AWS tooling, the console and AWS Backup read as
  "consistent as it stands" (what it means on AWSEC2-CreateVssSnapshot's snapshots); they carry
  vss-snapshots:consistency=after-revert: "contains a complete shadow copy set taken with the writers".

  Device tag: CreateSnapshots applies the same TagSpecifications to every snapshot of the set, so a tag
  whose value differs per snapshot (Device) cannot be set on create. CopyTagsFromSource=volume would copy
  ALL volume tags and would need a Device tag on every volume first. So Device is added by one CreateTags
  call per snapshot afterwards, best effort: the attribution tags are never missing (tagged on create),
  and the orchestrator falls back to its own volume-to-device map when Device is absent.

  Output contract (src/lib/result-line.ts): stdout starts with exactly one line
  "VSS-SNAPSHOTS-RESULT <json>", followed by the human log. Nothing else is written to stdout before it,
  so the line survives the 2,500-character output cut of ListCommandInvocations.

  Exit codes: 0 success; 1 unexpected error (retryable). From 10 on, even codes are retryable and odd
  codes permanent: 10/11 VSS, 12/13 EBS request, 14/15 instance or prerequisites. The result line's
  errorCode says exactly what failed; its retryable flag always agrees with the exit code.
#>

$Method = 'diskshadow'

# Same patterns as the document parameters (src/documents/document-parameters.ts).
$AttemptPattern = '^[1-5]$'
$StackIdPattern = '^([A-Za-z0-9][A-Za-z0-9._-]{0,127})?$'
$BooleanPattern = '^(True|False)$'

# Tag keys and values, as in src/lib/run-id.ts and src/lib/methods/diskshadow.ts.
$RunTag = 'vss-snapshots:run-id'
$AttemptTag = 'vss-snapshots:attempt'
$MethodTag = 'vss-snapshots:method'
$InstanceTag = 'vss-snapshots:instance-id'
$StackTag = 'vss-snapshots:stack'
$ShadowSetTag = 'vss-snapshots:shadow-set-id'
$ConsistencyTag = 'vss-snapshots:consistency'
$AfterRevert = 'after-revert'
$NotShadowed = 'not-shadowed'

$ShadowCreateTimeoutSeconds = 600
$SnapshotStepTimeoutSeconds = 900
$EndBackupTimeoutSeconds = 300

# The longest result line printed: ListCommandInvocations returns the first 2,500 characters of the output.
$MaxResultLineLength = 2400

# Exit codes by stage and retryability (src/lib/result-line.ts, SNAPSHOT_EXIT_CODES).
$ExitCodes = [ordered]@{
  'success'            = 0
  'unexpected'         = 1
  'vss-retryable'      = 10
  'vss-permanent'      = 11
  'ebs-retryable'      = 12
  'ebs-permanent'      = 13
  'instance-retryable' = 14
  'instance-permanent' = 15
}

# Every errorCode this script reports, with whether another attempt can help. These are failure codes of
# src/lib/failure-catalogue.ts and must agree with its retryable flags (checked by the tests).
$FailureRetryable = [ordered]@{
  'unshadowed-disk'           = $false
  'vss-component-excluded'    = $false
  'vss-timeout'               = $true
  'vss-writer-retryable'      = $true
  'vss-in-progress'           = $true
  'vss-writer-nonretryable'   = $false
  'vss-insufficient-storage'  = $false
  'concurrent-snapshot-limit' = $false
  'language-mode'             = $false
  'script-failed'             = $true
}

# How DiskShadow reports a writer component left out of the backup because one of its files is on a volume
# outside the shadow copy set ("create" still succeeds), for example:
#   Component "\TasksStore" from writer "Task Scheduler Writer" is excluded from backup,
#   because it requires volume C:\ which is not in the shadow copy set.
$ExcludedComponentPattern = 'Component "(?<component>[^"]+)" from writer "(?<writer>[^"]+)" is excluded from backup,?\s+because it requires volume (?<volume>\S+) which is not in the shadow copy set'

# Windows' own in-box writers of operating system state (Microsoft, "In-Box VSS Writers"): their
# components live on the system volume and the EFI/System Reserved partitions, which are left out when the
# boot volume is excluded or cannot be shadowed (FAT). Restoring system state from these snapshots is not
# what they are for, so leaving these out is expected; any other writer's component left out fails the run.
$OsStateWriters = @(
  'System Writer'
  'ASR Writer'
  'Registry Writer'
  'COM+ REGDB Writer'
  'WMI Writer'
  'Task Scheduler Writer'
  'VSS Metadata Store Writer'
  'Performance Counters Writer'
  'Shadow Copy Optimization Writer'
  'BITS Writer'
)

# VSS errors as DiskShadow prints them (name or HRESULT), most specific first.
$VssErrorPatterns = @(
  @{ Pattern = 'VSS_E_WRITERERROR_NONRETRYABLE|0x800423F4'; Code = 'vss-writer-nonretryable' }
  @{ Pattern = 'VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT|0x800423F0'; Code = 'vss-writer-nonretryable' }
  @{ Pattern = 'VSS_E_INSUFFICIENT_STORAGE|0x8004231F'; Code = 'vss-insufficient-storage' }
  @{ Pattern = 'VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED|0x80042317'; Code = 'vss-insufficient-storage' }
  @{ Pattern = 'VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED|0x8004231E'; Code = 'vss-insufficient-storage' }
  @{ Pattern = 'VSS_E_SNAPSHOT_SET_IN_PROGRESS|0x80042316'; Code = 'vss-in-progress' }
  @{ Pattern = 'VSS_E_WRITERERROR_(TIMEOUT|OUTOFRESOURCES|RETRYABLE)|0x800423F[123]'; Code = 'vss-writer-retryable' }
  @{ Pattern = 'VSS_E_(FLUSH|HOLD)_WRITES_TIMEOUT|VSS_E_WRITER_NOT_RESPONDING|0x8004231[349]'; Code = 'vss-timeout' }
)

$script:Work = $null
$script:Files = $null
$script:PendingFile = $null
$script:SetId = $null
$script:DiskShadowProcess = $null
$script:RunLock = $null
# Volumes left out of the EBS snapshot set by design (the excluded boot disk, instance store).
$script:OutOfSetVolumes = @()

function New-ResultObject {
  [ordered]@{
    version       = $ResultVersion
    operation     = 'snapshot'
    method        = $Method
    runId         = $null
    attempt       = $null
    instanceId    = $null
    outcome       = 'failed'
    errorCode     = $null
    retryable     = $false
    exitCode      = 1
    message       = ''
    vss           = 'not-started'
    shadowSetId   = $null
    appConsistent = $false
    cleanup       = 'not-needed'
    warnings      = @()
    snapshots     = @()
    volumes       = @()
  }
}

function New-SnapshotRecord([string]$SnapshotId, [string]$VolumeId, [string]$Device) {
  [ordered]@{
    snapshotId = $SnapshotId
    volumeId   = $VolumeId
    device     = $Device
  }
}

function New-VolumeRecord([string]$Path, [string]$ShadowCopyId) {
  [ordered]@{
    path         = $Path
    shadowCopyId = $ShadowCopyId
  }
}

# --- Parameters and prerequisites ---------------------------------------------------------------------

function Read-Parameters {
  @{
    RunId             = Confirm-Parameter 'RunId' $env:SSM_RunId $RunIdPattern
    Attempt           = [int](Confirm-Parameter 'Attempt' $env:SSM_Attempt $AttemptPattern)
    # Optional (empty: the snapshots get no stack tag, and retention never deletes them).
    StackId           = $(if ([string]::IsNullOrEmpty($env:SSM_StackId)) { '' } else { Confirm-Parameter 'StackId' $env:SSM_StackId $StackIdPattern })
    ExcludeBootVolume = ((Confirm-Parameter 'ExcludeBootVolume' $env:SSM_ExcludeBootVolume $BooleanPattern) -ceq 'True')
    CopyOnly          = ((Confirm-Parameter 'CopyOnly' $env:SSM_CopyOnly $BooleanPattern) -ceq 'True')
  }
}

function Import-AwsTools {
  foreach ($module in @('AWS.Tools.EC2', 'AWSPowerShell')) {
    try {
      Import-Module -Name $module -ErrorAction Stop
      if (Get-Command -Name 'New-EC2SnapshotBatch' -ErrorAction SilentlyContinue) {
        Write-Log "Using AWS Tools for PowerShell module $module."
        return
      }
    } catch {
      Write-Log "Module $module not usable: $($_.Exception.Message)"
    }
  }
  Stop-WithFailure 'instance' 'script-failed' 'AWS Tools for PowerShell with New-EC2SnapshotBatch (module AWS.Tools.EC2, or a recent AWSPowerShell) is not installed.'
}

# --- Volumes -------------------------------------------------------------------------------------------

# Fixed NTFS/ReFS volumes with a drive letter or mount point on EBS disks (instance store is never
# snapshotted, so it is not shadowed either); without the boot disk when it is excluded.
function Get-ShadowVolumes([bool]$ExcludeBoot) {
  $partitions = @(Get-Partition)
  $disks = @{}
  foreach ($disk in @(Get-Disk)) { $disks[[int]$disk.Number] = $disk }
  $bootDisk = -1
  $systemPartition = $partitions | Where-Object { "$($_.DriveLetter):" -eq $env:SystemDrive } | Select-Object -First 1
  if ($systemPartition) { $bootDisk = [int]$systemPartition.DiskNumber }

  $selected = @()
  foreach ($volume in @(Get-CimInstance -ClassName Win32_Volume -Filter 'DriveType = 3')) {
    if (@('NTFS', 'ReFS') -notcontains $volume.FileSystem) { continue }
    if ("$($volume.Name)" -like '\\?\*') { continue }
    $partition = $partitions | Where-Object { $_.AccessPaths -contains $volume.DeviceID } | Select-Object -First 1
    if (-not $partition) {
      Write-Log "Skipping $($volume.Name): no partition found for $($volume.DeviceID)."
      continue
    }
    $disk = $disks[[int]$partition.DiskNumber]
    if ($disk -and ("$($disk.FriendlyName) $($disk.Model)" -match 'Instance Storage')) {
      Write-Log "Skipping $($volume.Name): on instance store disk $($partition.DiskNumber)."
      $script:OutOfSetVolumes += "$($volume.Name)"
      continue
    }
    if ($ExcludeBoot -and ([int]$partition.DiskNumber -eq $bootDisk)) {
      Write-Log "Skipping $($volume.Name): on the boot disk, which is excluded."
      $script:OutOfSetVolumes += "$($volume.Name)"
      continue
    }
    $path = $volume.DeviceID
    if ($volume.DriveLetter) { $path = $volume.DriveLetter }
    $selected += @{ Path = $path; Name = $volume.Name; DeviceId = $volume.DeviceID; DiskNumber = [int]$partition.DiskNumber }
  }
  $selected
}

# An EBS disk of the set without any shadowed volume (raw, or a file system VSS cannot shadow) holds no
# shadow copy: its snapshot must not say after-revert, and the restore must not look for a shadow copy on
# it. CreateSnapshots gives every snapshot of the set the same tags, so such a disk's snapshot is told
# apart by its EBS volume id, which on Nitro instances is the disk's serial number.
function Get-UnshadowedDisks($Volumes, [bool]$ExcludeBoot) {
  $shadowedDisks = @($Volumes | ForEach-Object { $_.DiskNumber })
  $found = @()
  foreach ($disk in @(Get-Disk)) {
    if ("$($disk.FriendlyName) $($disk.Model)" -match 'Instance Storage') { continue }
    if ($ExcludeBoot -and ($disk.IsBoot -or $disk.IsSystem)) { continue }
    if ($shadowedDisks -contains [int]$disk.Number) { continue }
    $serial = "$($disk.SerialNumber)".Trim() -replace '_.*$', ''
    $volumeId = $null
    if ($serial -match '^vol[0-9a-f]{8,17}$') { $volumeId = $serial -replace '^vol', 'vol-' }
    $found += @{ Number = [int]$disk.Number; VolumeId = $volumeId }
  }
  $found
}

# A shadow copy whose diff area is on another volume is not inside this volume's snapshot.
function Test-ShadowStorage($Volumes) {
  try {
    foreach ($storage in @(Get-CimInstance -ClassName Win32_ShadowStorage)) {
      $of = "$($storage.Volume.DeviceID)"
      $on = "$($storage.DiffVolume.DeviceID)"
      $volume = $Volumes | Where-Object { $_.DeviceId -eq $of } | Select-Object -First 1
      if ($volume -and $on -and ($on -ne $of)) {
        Add-Warning "Shadow storage of $($volume.Name) is on another volume ($on): restoring $($volume.Name) alone cannot revert it."
      }
    }
  } catch {
    Write-Log "Could not read the shadow storage associations: $($_.Exception.Message)"
  }
}

# EC2 snapshots capture only the data written to the volume when the request is made, not what the
# operating system still caches (EC2 API reference, CreateSnapshot). The shadow copies' diff areas are
# files in each volume's System Volume Information: Write-VolumeCache (Storage module) writes each
# shadowed volume's file system cache to disk, so they and the metadata describing them are on the EBS
# volume before its point in time is fixed. A failed flush is a warning: the restore's revert proves it.
function Sync-Volumes($Volumes) {
  foreach ($volume in $Volumes) {
    try {
      Write-VolumeCache -Path $volume.DeviceId
      Write-Log "Flushed the file system cache of $($volume.Name)."
    } catch {
      Add-Warning "Could not flush $($volume.Name) before the EBS request (Write-VolumeCache): $($_.Exception.Message)"
    }
  }
}

# --- Shadow copies -------------------------------------------------------------------------------------

function Get-SetShadowCopies([string]$SetId) {
  @(Get-CimInstance -ClassName Win32_ShadowCopy | Where-Object { (ConvertTo-GuidText $_.SetID) -eq $SetId })
}

# Deletes the shadow copies of one set, never others. Returns $true when none of the set remains.
function Remove-ShadowSet([string]$SetId) {
  foreach ($shadow in Get-SetShadowCopies $SetId) {
    try {
      Remove-CimInstance -InputObject $shadow
      Write-Log "Deleted shadow copy $($shadow.ID) of $($shadow.VolumeName)."
    } catch {
      Write-Log "WMI could not delete shadow copy $($shadow.ID): $($_.Exception.Message); trying vssadmin."
      $run = Invoke-NativeCommand (Get-SystemTool 'vssadmin.exe') @('delete', 'shadows', "/shadow=$($shadow.ID)", '/quiet')
      foreach ($line in $run.Output) { Write-Log "vssadmin ($($run.ExitCode)): $line" }
    }
  }
  (@(Get-SetShadowCopies $SetId)).Count -eq 0
}

function Get-PendingSets([string]$File) {
  if (-not (Test-Path -LiteralPath $File)) { return @() }
  if (-not (Test-TrustedItem $File)) {
    Add-Warning "$File is not owned by SYSTEM or Administrators; its shadow set ids are ignored and it is removed."
    [System.IO.File]::Delete($File)
    return @()
  }
  @(Get-Content -LiteralPath $File | ForEach-Object { ConvertTo-GuidText $_ } | Where-Object { $_ })
}

function Set-PendingSets([string]$File, $SetIds) {
  $ids = @($SetIds | Where-Object { $_ } | Select-Object -Unique)
  if ($ids.Count -eq 0) {
    Remove-Item -LiteralPath $File -Force -ErrorAction SilentlyContinue
  } else {
    Set-Content -LiteralPath $File -Value $ids -Encoding ASCII
  }
}

# A run killed by the execution timeout never reaches its finally block, and may leave its DiskShadow
# running (waiting in its exec step) with a persistent shadow set. Under the run lock every DiskShadow
# started from the work folder belongs to such a run: it is stopped with its children, and the shadow set
# ids its files name (the set id the exec step wrote, or what DiskShadow printed - its output went to
# files, so it survives the PowerShell that started it) join the pending sets before the files go.
function Clear-StaleRuns([string]$WorkRoot, [string]$PendingFile) {
  foreach ($process in @(Get-CimInstance -ClassName Win32_Process -Filter "Name = 'diskshadow.exe'")) {
    if ("$($process.CommandLine)".IndexOf($WorkRoot, [System.StringComparison]::OrdinalIgnoreCase) -ge 0) {
      Write-Log "Stopping DiskShadow $($process.ProcessId) left running by an earlier run."
      $null = Stop-ProcessTree ([int]$process.ProcessId)
    }
  }
  $found = @()
  foreach ($stale in @(Get-ChildItem -LiteralPath $WorkRoot -Force)) {
    if ($stale.PSIsContainer -and (Test-TrustedItem $stale.FullName)) {
      $text = Read-DiskShadowOutput @((Join-Path $stale.FullName 'shadow-set.txt'), (Join-Path $stale.FullName 'diskshadow.out'), (Join-Path $stale.FullName 'diskshadow.log'))
      $setId = ConvertTo-GuidText ((Get-Content -LiteralPath (Join-Path $stale.FullName 'shadow-set.txt') -ErrorAction SilentlyContinue) -join '')
      if (-not $setId) { $setId = Find-ShadowSetId $text }
      if ($setId) {
        Write-Log "The earlier run in $($stale.Name) left shadow set $setId."
        $found += $setId
      }
    }
    Remove-TreeSafely $stale.FullName
  }
  if ($found.Count -gt 0) { Set-PendingSets $PendingFile (@(Get-PendingSets $PendingFile) + $found) }
}

# A run killed by the execution timeout never reaches its finally block: its shadow set is deleted here.
function Remove-StaleShadowSets([string]$File) {
  $left = @()
  foreach ($setId in Get-PendingSets $File) {
    Write-Log "Deleting shadow set $setId left behind by an earlier run."
    if (-not (Remove-ShadowSet $setId)) { $left += $setId; Add-Warning "Shadow set $setId of an earlier run could not be deleted." }
  }
  Set-PendingSets $File $left
}

function Read-DiskShadowOutput($Paths) {
  $text = ''
  foreach ($path in $Paths) {
    if (Test-Path -LiteralPath $path) { $text += (Get-Content -LiteralPath $path -Raw -ErrorAction SilentlyContinue) + "`n" }
  }
  $text
}

function Get-ExcludedComponents([string]$Text) {
  $found = @()
  foreach ($match in [regex]::Matches($Text, $ExcludedComponentPattern)) {
    $found += @{ Component = $match.Groups['component'].Value; Writer = $match.Groups['writer'].Value; Volume = $match.Groups['volume'].Value }
  }
  $found
}

# A component left out of the backup was not frozen with the rest: whatever of its files are in the EBS
# snapshots is crash-consistent, yet the set would be called consistent. Tolerated only for the operating
# system's own writers and for volumes that are out of the EBS snapshot set by design (the excluded boot
# disk, instance store); any other fails the run before the EBS request.
function Assert-NoExcludedComponents([string]$Text) {
  $tolerated = @()
  $fatal = @()
  foreach ($component in @(Get-ExcludedComponents $Text)) {
    if (($OsStateWriters -contains $component.Writer) -or ($script:OutOfSetVolumes -contains $component.Volume)) { $tolerated += $component } else { $fatal += $component }
  }
  $describe = { param($list) (@($list | Select-Object -First 3 | ForEach-Object { "$($_.Component) of $($_.Writer) (needs $($_.Volume))" }) -join '; ') + $(if (@($list).Count -gt 3) { "; and $(@($list).Count - 3) more" } else { '' }) }
  if ($tolerated.Count -gt 0) {
    Add-Warning "$($tolerated.Count) writer component(s) left out, on volumes outside the EBS snapshots by design or of Windows' own system-state writers: $(& $describe $tolerated)."
  }
  if ($fatal.Count -gt 0) {
    Stop-WithFailure 'vss' 'vss-component-excluded' "DiskShadow left writer component(s) out of the backup because they need a volume that is not in the shadow copy set: $(& $describe $fatal). Their files in these snapshots would not be consistent. Give that volume a drive letter or mount point (NTFS/ReFS), keep ExcludeBootVolume False, or move the files."
  }
}

function Find-ShadowSetId([string]$Text) {
  $match = [regex]::Match($Text, 'set ID[^{\r\n]*\{([0-9a-fA-F-]{36})\}')
  if ($match.Success) { return ConvertTo-GuidText $match.Groups[1].Value }
  $null
}

function Get-VssFailureCode([string]$Text) {
  foreach ($known in $VssErrorPatterns) {
    if ($Text -match $known.Pattern) { return $known.Code }
  }
  'script-failed'
}

function Get-LastMeaningfulLine([string]$Text) {
  $lines = @($Text -split "`r?`n" | Where-Object { $_.Trim() -and ($_ -match 'error|fail|0x8004') })
  if ($lines.Count -gt 0) { return $lines[-1].Trim() }
  ''
}

# The batch file DiskShadow runs between "create" and "end backup": it hands the shadow ids over and waits
# until this script has requested the EBS snapshots (exit 0: DiskShadow runs "end backup") or gave up
# (exit 1: DiskShadow stops, VSS aborts the backup for the writers). Bounded by its own counter.
function New-SnapshotStepCmd($Files, $Aliases) {
  $lines = @(
    '@echo off',
    'rem Generated by vss-snapshots diskshadow-snapshot.ps1 for one run; deleted afterwards.',
    ('>"{0}" echo %VSS_SHADOW_SET%' -f $Files.SetId)
  )
  foreach ($alias in $Aliases) { $lines += ('>>"{0}" echo {1}=%{1}%' -f $Files.ShadowIds, $alias) }
  $lines += @(
    ('>"{0}" echo created' -f $Files.Created),
    'set /a waited=0',
    ':wait',
    ('if exist "{0}" exit /b 0' -f $Files.Proceed),
    ('if exist "{0}" exit /b 1' -f $Files.Abort),
    ('if %waited% geq {0} exit /b 1' -f $SnapshotStepTimeoutSeconds),
    'ping -n 2 127.0.0.1 >nul',
    'set /a waited+=1',
    'goto wait'
  )
  Set-Content -LiteralPath $Files.StepCmd -Value $lines -Encoding ASCII
}

# A full backup ("begin backup" ... "end backup": the writers record it, SQL Server truncates its logs and
# starts a new differential base), or with $CopyOnly a copy backup: DiskShadow's default, which "begin
# backup" overrides (Windows Commands reference, "begin backup"); the writers still freeze and thaw.
function New-DiskShadowScript($Files, $Volumes, [bool]$CopyOnly) {
  $lines = @(
    'set verbose on',
    'set context persistent',
    ('set metadata {0}' -f $Files.Metadata)
  )
  if (-not $CopyOnly) { $lines += 'begin backup' }
  foreach ($volume in $Volumes) { $lines += ('add volume {0} alias {1}' -f $volume.Path, $volume.Alias) }
  $lines += @(
    'create',
    ('exec {0}' -f $Files.StepCmd)
  )
  if (-not $CopyOnly) { $lines += 'end backup' }
  Set-Content -LiteralPath $Files.Script -Value $lines -Encoding ASCII
}

function Read-ShadowIds($Files) {
  $ids = @{}
  if (Test-Path -LiteralPath $Files.ShadowIds) {
    foreach ($line in @(Get-Content -LiteralPath $Files.ShadowIds)) {
      $parts = "$line".Split('=', 2)
      if ($parts.Count -eq 2) { $ids[$parts[0].Trim()] = ConvertTo-GuidText $parts[1] }
    }
  }
  $ids
}

# --- EBS -----------------------------------------------------------------------------------------------

function Get-AwsErrorCode($Exception) {
  $current = $Exception
  while ($current) {
    if ($current.PSObject.Properties['ErrorCode'] -and $current.ErrorCode) { return "$($current.ErrorCode)" }
    $current = $current.InnerException
  }
  ''
}

function New-Ec2Tag([string]$Key, [string]$Value) {
  New-Object -TypeName Amazon.EC2.Model.Tag -ArgumentList $Key, $Value
}

function Get-DeviceMap([string]$InstanceId, [string]$Region) {
  $map = @{}
  try {
    $attribute = Get-EC2InstanceAttribute -InstanceId $InstanceId -Attribute blockDeviceMapping -Region $Region
    foreach ($mapping in @($attribute.BlockDeviceMappings)) {
      if ($mapping.Ebs -and $mapping.Ebs.VolumeId) { $map[$mapping.Ebs.VolumeId] = $mapping.DeviceName }
    }
  } catch {
    Add-Warning "Could not read the block device mapping (ec2:DescribeInstanceAttribute): $($_.Exception.Message)"
  }
  $map
}

# ONE CreateSnapshots call for the whole instance, tagged on create.
# With $ConsistencyOnCreate the set is tagged after-revert on create (every disk holds a shadow copy);
# otherwise Set-ConsistencyTags tags each snapshot afterwards, and one it could not tag stays untagged,
# which verify counts as crash-consistent.
function Request-Snapshots($Params, [string]$InstanceId, [string]$Region, [string]$SetId, [bool]$ConsistencyOnCreate) {
  $tagSpec = New-Object -TypeName Amazon.EC2.Model.TagSpecification
  $tagSpec.ResourceType = 'snapshot'
  if ($null -eq $tagSpec.Tags) { $tagSpec.Tags = New-Object -TypeName 'System.Collections.Generic.List[Amazon.EC2.Model.Tag]' }
  $tagSpec.Tags.Add((New-Ec2Tag $RunTag $Params.RunId))
  $tagSpec.Tags.Add((New-Ec2Tag $AttemptTag ([string]$Params.Attempt)))
  $tagSpec.Tags.Add((New-Ec2Tag $MethodTag $Method))
  $tagSpec.Tags.Add((New-Ec2Tag $InstanceTag $InstanceId))
  if ($Params.StackId) { $tagSpec.Tags.Add((New-Ec2Tag $StackTag $Params.StackId)) }
  $tagSpec.Tags.Add((New-Ec2Tag $ShadowSetTag $SetId))
  # Only reached after DiskShadow "create" succeeded: every shadowed volume holds the shadow copy.
  if ($ConsistencyOnCreate) { $tagSpec.Tags.Add((New-Ec2Tag $ConsistencyTag $AfterRevert)) }

  $description = "vss-snapshots $($Params.RunId) attempt $($Params.Attempt) diskshadow shadow set $SetId"
  # The self-test reads this line's time: what the workload wrote after it is outside the shadow copies.
  Write-Log 'Requesting the EBS snapshots (CreateSnapshots).'
  try {
    @(New-EC2SnapshotBatch -InstanceSpecification_InstanceId $InstanceId -InstanceSpecification_ExcludeBootVolume $Params.ExcludeBootVolume -TagSpecification $tagSpec -Description $description -Region $Region -Force)
  } catch {
    $code = Get-AwsErrorCode $_.Exception
    $text = "$code $($_.Exception.Message)"
    if ($text -match 'ConcurrentSnapshotLimitExceeded') {
      Stop-WithFailure 'ebs' 'concurrent-snapshot-limit' "CreateSnapshots refused: ConcurrentSnapshotLimitExceeded ($($_.Exception.Message))"
    }
    if ($text -match 'UnauthorizedOperation|AccessDenied') {
      Stop-WithFailure 'ebs' 'script-failed' "CreateSnapshots was denied ($code): the instance profile needs ec2:CreateSnapshots and ec2:CreateTags with ec2:CreateAction=CreateSnapshots."
    }
    Stop-WithFailure 'ebs' 'script-failed' "CreateSnapshots failed ($code): $($_.Exception.Message)"
  }
}

function Add-DeviceTags($Snapshots, $DeviceMap, [string]$Region) {
  foreach ($snapshot in $Snapshots) {
    $device = $DeviceMap[$snapshot.VolumeId]
    if (-not $device) { continue }
    try {
      New-EC2Tag -Resource $snapshot.SnapshotId -Tag (New-Ec2Tag 'Device' $device) -Region $Region -Force
    } catch {
      Add-Warning "Device tag not set on $($snapshot.SnapshotId) ($device): $($_.Exception.Message)"
    }
  }
}

function Set-ConsistencyTags($Snapshots, $NotShadowedVolumeIds, [string]$Region) {
  foreach ($snapshot in $Snapshots) {
    $value = $AfterRevert
    if ($NotShadowedVolumeIds -contains $snapshot.VolumeId) { $value = $NotShadowed }
    try {
      New-EC2Tag -Resource $snapshot.SnapshotId -Tag (New-Ec2Tag $ConsistencyTag $value) -Region $Region -Force
    } catch {
      Add-Warning "$ConsistencyTag=$value not set on $($snapshot.SnapshotId): $($_.Exception.Message). The run will count it crash-consistent and retry."
    }
  }
}

function Remove-ConsistencyTag($Snapshots, [string]$Region) {
  foreach ($snapshot in $Snapshots) {
    try {
      Remove-EC2Tag -Resource $snapshot.SnapshotId -Tag (New-Ec2Tag $ConsistencyTag $null) -Region $Region -Force
    } catch {
      Add-Warning "Could not remove $ConsistencyTag from $($snapshot.SnapshotId) (ec2:DeleteTags): it must not be restored."
    }
  }
}

# --- The run -------------------------------------------------------------------------------------------

# One run at a time on this instance (a second command, or another run started with force): the later one
# fails as vss-in-progress, which is retried. The lock is a file opened without sharing in the state folder,
# where only SYSTEM and Administrators may create files (a named mutex in Global\ could be created first
# by any user, and would block every run). Windows closes the handle, and so releases the lock, when this
# process dies.
function Enter-RunLock([string]$StateDir) {
  $path = Join-Path $StateDir 'diskshadow-run.lock'
  try {
    $script:RunLock = [System.IO.File]::Open($path, [System.IO.FileMode]::OpenOrCreate, [System.IO.FileAccess]::ReadWrite, [System.IO.FileShare]::None)
  } catch [System.IO.IOException] {
    Stop-WithFailure 'vss' 'vss-in-progress' 'Another vss-snapshots DiskShadow run is active on this instance.'
  }
}

function Exit-RunLock {
  if ($script:RunLock) {
    $script:RunLock.Dispose()
    $script:RunLock = $null
  }
}

function Wait-ForFile([string]$Path, $Process, [int]$TimeoutSeconds) {
  $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
  while (-not (Test-Path -LiteralPath $Path)) {
    if ($Process.HasExited) { return (Test-Path -LiteralPath $Path) }
    if ((Get-Date) -gt $deadline) { return $false }
    Start-Sleep -Milliseconds 500
  }
  $true
}

function Invoke-DiskShadowSnapshot {
  $result = $script:Result
  Assert-FullLanguage
  $params = Read-Parameters
  $result.runId = $params.RunId
  $result.attempt = $params.Attempt

  $token = Get-ImdsToken
  $instanceId = Get-ImdsValue $token 'instance-id'
  $region = Get-ImdsValue $token 'placement/region'
  $result.instanceId = $instanceId
  Write-Log "Instance $instanceId in $region, run $($params.RunId) attempt $($params.Attempt), ExcludeBootVolume=$($params.ExcludeBootVolume), CopyOnly=$($params.CopyOnly)."

  Import-AwsTools
  $diskshadow = Get-DiskShadowPath

  $stateDir = Get-StateDirectory @()
  Enter-RunLock $stateDir
  $pendingFile = Join-Path $stateDir 'pending-shadow-sets.txt'
  $script:PendingFile = $pendingFile
  # Under the lock no other run is active: what an earlier, killed run left behind can go.
  $workRoot = Get-StateDirectory @('work')
  Clear-StaleRuns $workRoot $pendingFile
  $work = Get-StateDirectory @('work', ('{0}-a{1}' -f $params.RunId, $params.Attempt))
  if ($work -match '\s') { Stop-WithFailure 'instance' 'script-failed' "The work folder path must not contain spaces (DiskShadow scripts): $work" }
  $script:Work = $work
  Remove-StaleShadowSets $pendingFile

  $volumes = @(Get-ShadowVolumes $params.ExcludeBootVolume)
  if ($volumes.Count -eq 0) {
    Stop-WithFailure 'instance' 'script-failed' 'No fixed NTFS/ReFS volume with a drive letter or mount point was found on the EBS disks to be snapshotted.'
  }
  $aliases = @()
  for ($i = 0; $i -lt $volumes.Count; $i++) {
    $volumes[$i].Alias = "vss_v$i"
    $aliases += "vss_v$i"
  }
  Write-Log ('Volumes to shadow: {0}.' -f (($volumes | ForEach-Object { $_.Name }) -join ', '))
  Test-ShadowStorage $volumes
  $unshadowed = @(Get-UnshadowedDisks $volumes $params.ExcludeBootVolume)
  foreach ($disk in $unshadowed) {
    $name = if ($disk.VolumeId) { $disk.VolumeId } else { 'its EBS volume id is unknown' }
    Add-Warning "Disk $($disk.Number) ($name) holds no NTFS/ReFS volume with a drive letter or mount point: it gets no shadow copy, its snapshot is tagged $ConsistencyTag=$NotShadowed and the restore does not revert it."
  }
  $unmapped = @($unshadowed | Where-Object { -not $_.VolumeId } | ForEach-Object { $_.Number })
  if ($unmapped.Count -gt 0) {
    Stop-WithFailure 'instance' 'unshadowed-disk' "Disk(s) $($unmapped -join ', ') hold no NTFS/ReFS volume with a drive letter or mount point, and their EBS volume ids cannot be read (on Xen instances disk serial numbers are not volume ids), so their snapshots could not be told apart from those holding shadow copies. Give each such a volume, detach it, or use the aws-vss method."
  }
  $notShadowedIds = @($unshadowed | ForEach-Object { $_.VolumeId })
  $deviceMap = Get-DeviceMap $instanceId $region

  $files = @{
    Script    = Join-Path $work 'snapshot.dsh'
    StepCmd   = Join-Path $work 'snapshot-step.cmd'
    Metadata  = Join-Path $work 'backup.cab'
    Log       = Join-Path $work 'diskshadow.log'
    Stdout    = Join-Path $work 'diskshadow.out'
    Stderr    = Join-Path $work 'diskshadow.err'
    SetId     = Join-Path $work 'shadow-set.txt'
    ShadowIds = Join-Path $work 'shadow-ids.txt'
    Created   = Join-Path $work 'created.flag'
    Proceed   = Join-Path $work 'proceed.flag'
    Abort     = Join-Path $work 'abort.flag'
  }
  $script:Files = $files
  New-SnapshotStepCmd $files $aliases
  New-DiskShadowScript $files $volumes $params.CopyOnly

  Write-Log 'Starting DiskShadow (begin backup, create).'
  $process = Start-Process -FilePath $diskshadow -ArgumentList @('/s', $files.Script, '/l', $files.Log) -WorkingDirectory $work -NoNewWindow -PassThru -RedirectStandardOutput $files.Stdout -RedirectStandardError $files.Stderr
  $null = $process.Handle
  $script:DiskShadowProcess = $process

  $created = Wait-ForFile $files.Created $process $ShadowCreateTimeoutSeconds
  $output = Read-DiskShadowOutput @($files.Stdout, $files.Stderr, $files.Log)
  $setId = ConvertTo-GuidText ((Get-Content -LiteralPath $files.SetId -ErrorAction SilentlyContinue) -join '')
  if (-not $setId) { $setId = Find-ShadowSetId $output }
  if ($setId) {
    $script:SetId = $setId
    $result.shadowSetId = $setId
    Set-PendingSets $pendingFile (@(Get-PendingSets $pendingFile) + $setId)
  }

  if (-not $created) {
    $result.vss = 'failed'
    if (-not $process.HasExited) {
      Stop-WithFailure 'vss' 'vss-timeout' "DiskShadow did not create the shadow copies within $ShadowCreateTimeoutSeconds s (VSS freeze or writers stuck)."
    }
    $code = Get-VssFailureCode $output
    $detail = Get-LastMeaningfulLine $output
    Stop-WithFailure 'vss' $code "DiskShadow could not create the shadow copies (exit code $($process.ExitCode)): $detail"
  }
  if (-not $setId) {
    $result.vss = 'failed'
    Stop-WithFailure 'vss' 'script-failed' 'DiskShadow created the shadow copies but did not report their shadow set id.'
  }

  $shadowIds = Read-ShadowIds $files
  $records = @()
  foreach ($volume in $volumes) { $records += New-VolumeRecord $volume.Name $shadowIds[$volume.Alias] }
  $result.volumes = $records
  $result.vss = 'created'
  Write-Log "Shadow copy set $setId created for $($volumes.Count) volume(s); writers have resumed."
  Assert-NoExcludedComponents $output
  Sync-Volumes $volumes

  try {
    $snapshots = @(Request-Snapshots $params $instanceId $region $setId ($notShadowedIds.Count -eq 0))
  } catch {
    Set-Content -LiteralPath $files.Abort -Value 'abort' -Encoding ASCII
    throw
  }
  $entries = @()
  foreach ($snapshot in $snapshots) { $entries += New-SnapshotRecord $snapshot.SnapshotId $snapshot.VolumeId $deviceMap[$snapshot.VolumeId] }
  $result.snapshots = $entries
  Write-Log ('CreateSnapshots accepted: {0}.' -f (($snapshots | ForEach-Object { "$($_.SnapshotId) of $($_.VolumeId)" }) -join ', '))

  # The EBS point in time is fixed now. A shadow copy that vanished before it (diff area overflow) is not
  # inside the snapshots: then they are not app-consistent and must not say so.
  $present = @(Get-SetShadowCopies $setId).Count
  if ($present -lt $volumes.Count) {
    Set-Content -LiteralPath $files.Abort -Value 'abort' -Encoding ASCII
    Remove-ConsistencyTag $snapshots $region
    $result.vss = 'failed'
    Stop-WithFailure 'vss' 'vss-insufficient-storage' "Only $present of $($volumes.Count) shadow copies still existed when the EBS snapshots were requested: Windows discarded shadow copies (shadow storage too small for the write rate)."
  }
  if ($notShadowedIds.Count -gt 0) { Set-ConsistencyTags $snapshots $notShadowedIds $region }
  $result.appConsistent = $true

  Set-Content -LiteralPath $files.Proceed -Value 'proceed' -Encoding ASCII
  if (-not $process.WaitForExit($EndBackupTimeoutSeconds * 1000)) {
    Add-Warning "DiskShadow did not finish within $EndBackupTimeoutSeconds s after the EBS request; it is stopped and the writers are not told the backup completed."
  } elseif ($process.ExitCode -ne 0) {
    Add-Warning "DiskShadow returned $($process.ExitCode) after the EBS request; the snapshots stand, but the writers may not record this backup."
  } else {
    Write-Log $(if ($params.CopyOnly) { 'DiskShadow finished (copy backup: the writers record no backup).' } else { 'DiskShadow end backup completed.' })
  }

  Add-DeviceTags $snapshots $deviceMap $region
  $result.outcome = 'success'
  $result.message = "Requested $($snapshots.Count) EBS snapshot(s) containing shadow copy set $setId."
}

function Complete-Cleanup {
  $result = $script:Result
  $process = $script:DiskShadowProcess
  if ($process -and -not $process.HasExited) {
    if ($script:Files) { Set-Content -LiteralPath $script:Files.Abort -Value 'abort' -Encoding ASCII -ErrorAction SilentlyContinue }
    if (-not $process.WaitForExit(30000)) {
      Write-Log 'Stopping DiskShadow and the step it runs.'
      $null = Stop-ProcessTree $process.Id
      $null = $process.WaitForExit(10000)
    }
  }
  if ($script:Files) {
    $output = Read-DiskShadowOutput @($script:Files.Stdout, $script:Files.Stderr)
    if (-not $output.Trim()) { $output = Read-DiskShadowOutput @($script:Files.Log) }
    foreach ($line in @($output -split "`r?`n" | Where-Object { $_.Trim() })) { Write-Log "diskshadow: $line" }
    if (-not $script:SetId) {
      $found = Find-ShadowSetId $output
      if ($found) { $script:SetId = $found; $result.shadowSetId = $found }
    }
  }
  if ($script:SetId) {
    if (Remove-ShadowSet $script:SetId) {
      $result.cleanup = 'done'
      Set-PendingSets $script:PendingFile @(Get-PendingSets $script:PendingFile | Where-Object { $_ -ne $script:SetId })
    } else {
      $result.cleanup = 'failed'
      Add-Warning "Shadow set $($script:SetId) could not be deleted now; the next run deletes it."
    }
  }
  if ($script:Work) {
    try { Remove-TreeSafely $script:Work } catch { Write-Log "Work folder $($script:Work) not removed: $($_.Exception.Message)" }
  }
  Exit-RunLock
}

Invoke-Main -Body { Invoke-DiskShadowSnapshot } -Cleanup { Complete-Cleanup }
