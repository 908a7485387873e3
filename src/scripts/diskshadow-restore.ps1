<#
.SYNOPSIS
  vss-snapshots, method "diskshadow": makes restored EBS volumes consistent by reverting them to the shadow
  copy their snapshot contains.

.DESCRIPTION
  The only step of the vss-snapshots DiskShadow restore document (SSM Command document, schema 2.2,
  aws:runPowerShellScript), built from this file by src/documents/build-documents.ts. It runs on the
  TARGET instance after the restore workflow attached volumes created from one run's snapshots.

  Parameters arrive as environment variables (interpolationType ENV_VAR, SSM Agent 3.3.2746.0 or later):
    SSM_RunId        run id of the snapshots (reported back; for the operator's record)
    SSM_VolumeIds    comma-separated EBS volume ids attached to this instance to restore (1 to 40)
    SSM_ShadowSetId  shadow copy set id of those snapshots (their tag vss-snapshots:shadow-set-id)

  Unlike the nine manual console steps it replaces, it touches ONLY the given disks and ONLY the shadow
  copies of the given set on them:
    1. Finds each volume's disk by its EBS serial number (waits while Windows enumerates a new disk).
       Refuses the boot or system disk.
    2. Checks everything before changing anything: a disk whose MBR signature or GPT id equals another
       disk's (a volume restored next to its source, or two disks from the same AMI) gets a new one, then
       the disk is brought online and writable, and every one of its volumes is searched for shadow copies
       of the set. A disk without any is refused (nothing is reverted on any disk).
    3. Reverts each of those shadow copies with DiskShadow ("revert <id>"). The shadow copy was created
       with "set context persistent" (VSS_CTX_APP_ROLLBACK), which IVssBackupComponents::RevertToSnapshot
       supports on Windows Server. The revert cannot be undone; it consumes the shadow copy.

  Output contract (src/lib/result-line.ts): stdout starts with exactly one line
  "VSS-SNAPSHOTS-RESULT <json>" (operation "restore"), followed by the human log.

  Exit codes: 0 success; 1 unexpected error (retryable). From 10 on, even codes are retryable and odd
  codes permanent: 14/15 instance or prerequisites, 20/21 disk, 22/23 revert.
#>

# Same patterns as the document parameters (src/documents/document-parameters.ts).
$VolumeIdsPattern = '^vol-[0-9a-f]{8,17}(,vol-[0-9a-f]{8,17}){0,39}$'

$DiskWaitSeconds = 120
$ShadowDiscoverySeconds = 60
$RevertTries = 3
$RevertRetrySeconds = 10

# The longest result line printed: the restore reads it through GetCommandInvocation (24,000 characters).
$MaxResultLineLength = 23000

# Exit codes by stage and retryability (src/lib/result-line.ts, RESTORE_EXIT_CODES).
$ExitCodes = [ordered]@{
  'success'            = 0
  'unexpected'         = 1
  'instance-retryable' = 14
  'instance-permanent' = 15
  'disk-retryable'     = 20
  'disk-permanent'     = 21
  'revert-retryable'   = 22
  'revert-permanent'   = 23
}

# Every errorCode this script reports, with whether another attempt can help
# (src/lib/result-line.ts, RESTORE_ERROR_CODES; checked by the tests).
$FailureRetryable = [ordered]@{
  'disk-not-found'        = $true
  'disk-refused'          = $false
  'disk-online-failed'    = $false
  'signature-fix-failed'  = $false
  'shadow-copy-not-found' = $false
  'revert-in-progress'    = $true
  'revert-volume-in-use'  = $true
  'shadow-not-on-disk'    = $false
  'revert-unsupported'    = $false
  'revert-failed'         = $false
  'language-mode'         = $false
  'script-failed'         = $true
}

$script:Work = $null

function New-ResultObject {
  [ordered]@{
    version     = $ResultVersion
    operation   = 'restore'
    runId       = $null
    instanceId  = $null
    outcome     = 'failed'
    errorCode   = $null
    retryable   = $false
    exitCode    = 1
    message     = ''
    shadowSetId = $null
    warnings    = @()
    disks       = @()
  }
}

function New-DiskRecord([string]$VolumeId) {
  [ordered]@{
    volumeId         = $VolumeId
    diskNumber       = $null
    signatureChanged = $false
    online           = $false
    outcome          = 'pending'
    reverted         = @()
  }
}

function New-RevertRecord([string]$Volume, [string]$ShadowCopyId) {
  [ordered]@{
    volume       = $Volume
    shadowCopyId = $ShadowCopyId
  }
}

# --- Parameters and prerequisites ---------------------------------------------------------------------

function Read-Parameters {
  $volumeIds = Confirm-Parameter 'VolumeIds' $env:SSM_VolumeIds $VolumeIdsPattern
  @{
    RunId       = Confirm-Parameter 'RunId' $env:SSM_RunId $RunIdPattern
    VolumeIds   = @($volumeIds.Split(',') | Select-Object -Unique)
    ShadowSetId = Confirm-Parameter 'ShadowSetId' $env:SSM_ShadowSetId $GuidPattern
  }
}

# --- Disks ---------------------------------------------------------------------------------------------

function Get-DiskVolumePaths([int]$Number) {
  @(Get-Partition -DiskNumber $Number | ForEach-Object { $_.AccessPaths } | Where-Object { $_ -like '\\?\Volume{*}\' })
}

# Whether any volume of the disk has a file system VSS can shadow (as the snapshot script selects them).
function Test-ShadowableDisk([int]$Number) {
  $fileSystems = @(Get-Partition -DiskNumber $Number | Get-Volume -ErrorAction SilentlyContinue | ForEach-Object { "$($_.FileSystem)" })
  Write-Log "Disk $Number file systems: $(if ($fileSystems.Count) { $fileSystems -join ', ' } else { 'none' })."
  @($fileSystems | Where-Object { @('NTFS', 'ReFS') -contains $_ }).Count -gt 0
}

function Get-SetShadowCopies([string]$SetId) {
  @(Get-CimInstance -ClassName Win32_ShadowCopy | Where-Object { (ConvertTo-GuidText $_.SetID) -eq $SetId })
}

# --- Reverts already done on this instance --------------------------------------------------------------

# A revert consumes the shadow copy, so a second run of this document (after another disk of the same
# restore failed) would find none on a disk it already reverted and refuse every disk. Each revert is
# recorded on the instance right after it, in the state folder only SYSTEM and Administrators can write:
# "<EBS volume id>=<shadow set id>=<shadow copy id>=<volume>". The volume id is that of the restored
# volume, which no other restore shares.
$RevertRecordPattern = '^(vol-[0-9a-f]{8,17})=([0-9a-f-]{36})=([0-9a-f-]{36})=(\\\\\?\\Volume\{[0-9a-fA-F-]{36}\}\\)$'

function Get-RevertRecordFile {
  Join-Path (Get-StateDirectory @('restore')) 'reverted-volumes.txt'
}

function Get-RevertRecords {
  $file = Get-RevertRecordFile
  if (-not (Test-Path -LiteralPath $file)) { return @() }
  if (-not (Test-TrustedItem $file)) {
    Add-Warning "$file is not owned by SYSTEM or Administrators; its records are ignored."
    return @()
  }
  $records = @()
  foreach ($line in @(Get-Content -LiteralPath $file)) {
    $match = [regex]::Match("$line", $RevertRecordPattern)
    if ($match.Success) {
      $records += @{ VolumeId = $match.Groups[1].Value; SetId = $match.Groups[2].Value; ShadowCopyId = $match.Groups[3].Value; Volume = $match.Groups[4].Value }
    }
  }
  $records
}

function Add-RevertRecord([string]$VolumeId, [string]$SetId, [string]$ShadowCopyId, [string]$Volume) {
  $file = Get-RevertRecordFile
  # Records of volumes no longer attached to this instance are dropped (EBS serial numbers are volume ids).
  $attached = @(Get-Disk | ForEach-Object { ("$($_.SerialNumber)".Trim() -replace '_.*$', '') -replace '^vol', 'vol-' })
  $kept = @(Get-RevertRecords | Where-Object { $attached -contains $_.VolumeId } | ForEach-Object { '{0}={1}={2}={3}' -f $_.VolumeId, $_.SetId, $_.ShadowCopyId, $_.Volume })
  Set-Content -LiteralPath $file -Value (@($kept) + ('{0}={1}={2}={3}' -f $VolumeId, $SetId, $ShadowCopyId, $Volume)) -Encoding ASCII
}

# --- Disks, in the order the restore checks them -------------------------------------------------------

# 1. Finds the disk, refuses the boot disk, fixes a signature collision and brings it online; returns its
#    number and volume paths. Reverts nothing.
function Initialize-RestoreDisk([string]$VolumeId, $Record, [string]$Work) {
  $disk = Find-VolumeDisk $VolumeId
  $number = [int]$disk.Number
  $Record.diskNumber = $number
  if ($disk.IsBoot -or $disk.IsSystem) {
    Stop-WithFailure 'disk' 'disk-refused' "$VolumeId is disk $number, the boot or system disk of this instance: it is never reverted."
  }
  Write-Log "$VolumeId is disk $number ($($disk.PartitionStyle), $($disk.OperationalStatus))."

  if (Test-DiskIdentityCollision $disk) {
    Write-Log "Disk $number collides with another disk's signature; giving it a new one."
    Repair-DiskIdentity $disk $Work
    $Record.signatureChanged = $true
  }
  try {
    if ($disk.IsOffline) { Set-Disk -Number $number -IsOffline $false }
    if ($disk.IsReadOnly) { Set-Disk -Number $number -IsReadOnly $false }
  } catch {
    Stop-WithFailure 'disk' 'disk-online-failed' "Disk $number ($VolumeId) could not be brought online: $($_.Exception.Message)"
  }
  $Record.online = $true
  @{ VolumeId = $VolumeId; Number = $number; Record = $Record; Paths = @(); Shadows = @() }
}

# 2. The set's shadow copies on the disk's volumes (Windows finds them once the volumes are mounted; waits
#    up to $ShadowDiscoverySeconds unless an earlier run already reverted this disk).
function Find-DiskShadows($Disk, [string]$SetId, $Reverted) {
  $deadline = (Get-Date).AddSeconds($ShadowDiscoverySeconds)
  $known = @($Reverted | Where-Object { $_.VolumeId -eq $Disk.VolumeId -and $_.SetId -eq $SetId }).Count -gt 0
  while ($true) {
    $Disk.Paths = @(Get-DiskVolumePaths $Disk.Number)
    $Disk.Shadows = @(Get-SetShadowCopies $SetId | Where-Object { $Disk.Paths -contains $_.VolumeName })
    if ($Disk.Shadows.Count -gt 0 -or $known -or (Get-Date) -gt $deadline) { break }
    Start-Sleep -Seconds 5
  }
}

# 3. Every shadow copy of the set that Windows lists must be on a volume of this restore's disks, once.
#    Shadow copies restored twice (two volumes from one snapshot), or the source volume next to its
#    restore still holding the set, carry the same ids: "revert <id>" could revert the other volume - the
#    source's live data. Refused before anything is reverted.
function Assert-ShadowsOnRestoredDisks([string]$SetId, $VolumePaths) {
  $all = @(Get-SetShadowCopies $SetId)
  $outside = @($all | Where-Object { $VolumePaths -notcontains $_.VolumeName })
  if ($outside.Count -gt 0) {
    Stop-WithFailure 'revert' 'shadow-not-on-disk' "Shadow copies of set $SetId are also on volume(s) $((@($outside | ForEach-Object { $_.VolumeName } | Select-Object -Unique) -join ', ')), which are not among the disks of this restore (the source volume, or another volume restored from the same snapshot): reverting by shadow copy id could revert the wrong volume. Detach that disk and restore again. Nothing was reverted."
  }
  $twice = @($all | Group-Object -Property ID | Where-Object { $_.Count -ne 1 })
  if ($twice.Count -gt 0) {
    Stop-WithFailure 'revert' 'shadow-not-on-disk' "Shadow copy $($twice[0].Name) of set $SetId is on $($twice[0].Count) volumes of this restore (volumes restored from the same snapshot): reverting by its id could revert the wrong one. Restore each copy separately. Nothing was reverted."
  }
}

# 4. What is to be reverted on the disk: its shadow copies of the set; nothing when an earlier run already
#    reverted it or it has no volume VSS could shadow; otherwise the disk is refused.
function Resolve-DiskShadows($Disk, [string]$SetId, $Reverted) {
  $Record = $Disk.Record
  $number = $Disk.Number
  $VolumeId = $Disk.VolumeId
  if ($Disk.Shadows.Count -eq 0) {
    $done = @($Reverted | Where-Object { $_.VolumeId -eq $VolumeId -and $_.SetId -eq $SetId })
    if ($done.Count -gt 0) {
      $Record.outcome = 'already-reverted'
      $Record.reverted = @($done | ForEach-Object { New-RevertRecord $_.Volume $_.ShadowCopyId })
      Write-Log "Disk $number ($VolumeId) was reverted to set $SetId by an earlier run of this document; skipped."
      return
    }
    if (-not (Test-ShadowableDisk $number)) {
      # A disk the snapshot script could not shadow (tagged not-shadowed): nothing to revert.
      $Record.outcome = 'not-shadowed'
      Add-Warning "Disk $number ($VolumeId) holds no NTFS/ReFS volume, so its snapshot holds no shadow copy: it stays as the snapshot holds it."
      return
    }
    Stop-WithFailure 'revert' 'shadow-copy-not-found' "Disk $number ($VolumeId) holds no shadow copy of set $($SetId): its snapshot is not from that DiskShadow run, or the shadow copy was lost before the snapshot. Nothing was reverted."
  }
  foreach ($path in $Disk.Paths) {
    if (-not ($Disk.Shadows | Where-Object { $_.VolumeName -eq $path })) {
      Add-Warning "Volume $path on disk $number has no shadow copy of set $SetId; it stays as the snapshot holds it (crash-consistent)."
    }
  }
}

# --- The revert ---------------------------------------------------------------------------------------------

# The partition holding a volume, and its access paths other than the volume GUID path (drive letter,
# mount folders).
function Get-VolumeAccess([string]$VolumeName) {
  $partition = Get-Partition | Where-Object { $_.AccessPaths -contains $VolumeName } | Select-Object -First 1
  if (-not $partition) { return $null }
  @{ Partition = $partition; Paths = @($partition.AccessPaths | Where-Object { $_ -ne $VolumeName }) }
}

# Reverts one shadow copy with DiskShadow ("revert <id>"). VSS reverts only a volume it can lock
# (IVssBackupComponents::RevertToSnapshot: VSS_E_VOLUME_IN_USE when it cannot): the restored volume's drive
# letters and mount folders are taken away first so that antivirus, the indexer or Explorer open nothing
# new on it, the revert is tried $RevertTries times, and the access paths are given back whatever happened.
function Invoke-Revert([string]$DiskShadow, $Shadow, [string]$Work) {
  $scriptFile = Join-Path $Work 'revert.dsh'
  $outFile = Join-Path $Work 'revert.out'
  Set-Content -LiteralPath $scriptFile -Value @("revert $($Shadow.ID)") -Encoding ASCII
  $access = Get-VolumeAccess $Shadow.VolumeName
  $removed = @()
  try {
    if ($access) {
      foreach ($path in $access.Paths) {
        try {
          Remove-PartitionAccessPath -DiskNumber $access.Partition.DiskNumber -PartitionNumber $access.Partition.PartitionNumber -AccessPath $path
          $removed += $path
        } catch {
          Add-Warning "Could not take access path $path off $($Shadow.VolumeName) before the revert: $($_.Exception.Message)"
        }
      }
    }
    for ($try = 1; $try -le $RevertTries; $try++) {
      $process = Start-Process -FilePath $DiskShadow -ArgumentList @('/s', $scriptFile) -WorkingDirectory $Work -NoNewWindow -PassThru -Wait -RedirectStandardOutput $outFile
      $output = ''
      if (Test-Path -LiteralPath $outFile) { $output = Get-Content -LiteralPath $outFile -Raw }
      foreach ($line in @($output -split "`r?`n" | Where-Object { $_.Trim() })) { Write-Log "diskshadow: $line" }
      if ($process.ExitCode -eq 0) { return }
      if ($output -notmatch 'VSS_E_VOLUME_IN_USE|0x8004231D') { break }
      Write-Log "$($Shadow.VolumeName) is in use (try $try of $RevertTries)."
      if ($try -lt $RevertTries) { Start-Sleep -Seconds $RevertRetrySeconds }
    }
    if ($output -match 'VSS_E_VOLUME_IN_USE|0x8004231D') {
      Stop-WithFailure 'revert' 'revert-volume-in-use' "DiskShadow could not revert $($Shadow.VolumeName): VSS_E_VOLUME_IN_USE (0x8004231D) on each of $RevertTries tries; another process holds it open. Exclude the restored disks from antivirus scanning and run the restore again: volumes already reverted are skipped."
    }
    if ($output -match 'VSS_E_REVERT_IN_PROGRESS|0x80042325') {
      Stop-WithFailure 'revert' 'revert-in-progress' "A revert of $($Shadow.VolumeName) is already in progress."
    }
    if ($output -match 'VSS_E_UNSUPPORTED_CONTEXT|0x8004231B') {
      Stop-WithFailure 'revert' 'revert-unsupported' "VSS refused to revert $($Shadow.VolumeName) to shadow copy $($Shadow.ID): VSS_E_UNSUPPORTED_CONTEXT, revert is not supported for this shadow copy's context. See docs/windows.md, 'If the revert does not work'."
    }
    Stop-WithFailure 'revert' 'revert-failed' "DiskShadow could not revert $($Shadow.VolumeName) to shadow copy $($Shadow.ID) (exit code $($process.ExitCode))."
  } finally {
    if ($access) {
      foreach ($path in $removed) {
        try {
          Add-PartitionAccessPath -DiskNumber $access.Partition.DiskNumber -PartitionNumber $access.Partition.PartitionNumber -AccessPath $path
        } catch {
          Add-Warning "Could not give access path $path back to $($Shadow.VolumeName): $($_.Exception.Message)"
        }
      }
    }
  }
}

function Invoke-DiskShadowRestore {
  $result = $script:Result
  Assert-FullLanguage
  $params = Read-Parameters
  $result.runId = $params.RunId
  $result.shadowSetId = $params.ShadowSetId

  $token = Get-ImdsToken
  $result.instanceId = Get-ImdsValue $token 'instance-id'
  Write-Log "Restoring $($params.VolumeIds -join ', ') on $($result.instanceId) to shadow set $($params.ShadowSetId) of run $($params.RunId)."
  $diskshadow = Get-DiskShadowPath

  $work = Get-StateDirectory @('restore', [guid]::NewGuid().ToString('N'))
  $script:Work = $work
  $reverted = @(Get-RevertRecords)

  $records = @()
  foreach ($volumeId in $params.VolumeIds) { $records += New-DiskRecord $volumeId }
  $result.disks = $records

  # Every disk is found, brought online and checked before any revert starts.
  $disks = @()
  for ($i = 0; $i -lt $params.VolumeIds.Count; $i++) { $disks += Initialize-RestoreDisk $params.VolumeIds[$i] $records[$i] $work }
  foreach ($disk in $disks) { Find-DiskShadows $disk $params.ShadowSetId $reverted }
  Assert-ShadowsOnRestoredDisks $params.ShadowSetId @($disks | ForEach-Object { $_.Paths })
  foreach ($disk in $disks) { Resolve-DiskShadows $disk $params.ShadowSetId $reverted }

  foreach ($disk in $disks) {
    foreach ($shadow in $disk.Shadows) {
      Write-Log "Reverting $($shadow.VolumeName) on disk $($disk.Number) to shadow copy $($shadow.ID)."
      Invoke-Revert $diskshadow $shadow $work
      $shadowCopyId = ConvertTo-GuidText $shadow.ID
      Add-RevertRecord $disk.VolumeId $params.ShadowSetId $shadowCopyId $shadow.VolumeName
      $disk.Record.reverted = @($disk.Record.reverted) + @(New-RevertRecord $shadow.VolumeName $shadowCopyId)
    }
    if ($disk.Record.outcome -eq 'pending') { $disk.Record.outcome = 'reverted' }
  }
  $result.outcome = 'success'
  $count = @($disks | ForEach-Object { $_.Shadows }).Count
  $result.message = "Reverted $count volume(s) on $($disks.Count) disk(s) to shadow set $($params.ShadowSetId)."
}

function Complete-RestoreCleanup {
  if ($script:Work) { Remove-TreeSafely $script:Work }
}

Invoke-Main -Body { Invoke-DiskShadowRestore } -Cleanup { Complete-RestoreCleanup }
