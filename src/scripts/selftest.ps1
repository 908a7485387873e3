<#
.SYNOPSIS
  vss-snapshots self-test, the part that runs on the test instance: the "selftest" SSM document, driven
  by `vss-snapshots selftest` (src/selftest), which snapshots the instance with each method, restores the
  snapshots through the deployed restore workflow and reads back what this document reports.

.DESCRIPTION
  Parameters arrive as environment variables (interpolationType ENV_VAR), so a run of "prepare" that
  reports the RunId it was given proves the deployed documents' parameters reach the scripts:
    SSM_Action       prepare | stop | verify | cleanup
    SSM_RunId        the self-test's id (names the test folder)
    SSM_DataDrive    drive letter of the data volume the test writes to (D to Z)
    SSM_VolumeIds    verify: the restored EBS volumes attached to this instance (comma-separated), else empty
    SSM_Window       stop: "<from>/<to>" (UTC, milliseconds): count journal entries written in between
    SSM_ShadowSetId  cleanup: the DiskShadow snapshot's shadow set, which must be gone from this instance

  prepare  reports the instance's prerequisites (OS, PowerShell, DiskShadow, AWS Tools, AwsVssComponents,
           shadow storage, the state folder's ACL), writes known files to <drive>:\vss-selftest\<RunId>
           and starts the workload as a scheduled task running as SYSTEM: every 100 ms one line appended
           to journal.log (each line hashes the previous one) and one 4 KiB page rewritten in pages.db
           (each page carries its own hash), both written through to disk, like a small database.
  stop     stops the workload and reports the live journal (and how many entries fall in Window).
  verify   finds each restored volume's disk by its EBS serial number, brings it online (a restored disk
           next to its source gets a new signature, as the restore document does), and reports on each:
           known files, journal (hash chain, last entry, a torn last line) and pages.
  cleanup  stops the workload, deletes the scheduled task and the test folder, and reports the shadow
           copies of ShadowSetId still on this instance (there must be none).
#>

# Read through GetCommandInvocation, which returns 24,000 characters.
$MaxResultLineLength = 23000

# Exit codes by stage and retryability, the convention of src/lib/result-line.ts.
$ExitCodes = [ordered]@{
  'success'            = 0
  'unexpected'         = 1
  'instance-retryable' = 14
  'instance-permanent' = 15
  'disk-retryable'     = 20
  'disk-permanent'     = 21
  'selftest-retryable' = 30
  'selftest-permanent' = 31
}

$FailureRetryable = [ordered]@{
  'language-mode'        = $false
  'script-failed'        = $true
  'disk-not-found'       = $true
  'signature-fix-failed' = $false
  'data-drive-missing'   = $false
  'workload-not-running' = $true
}

# Same patterns as the document parameters (src/documents/document-parameters.ts).
$ActionPattern = '^(prepare|stop|verify|cleanup)$'
$DriveLetterPattern = '^[D-Z]$'
$OptionalVolumeIdsPattern = '^(vol-[0-9a-f]{8,17}(,vol-[0-9a-f]{8,17}){0,39})?$'
$WindowPattern = '^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z)?$'
$OptionalGuidPattern = '^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$'

$DiskWaitSeconds = 120
$TaskName = 'vss-snapshots-selftest-workload'
$KnownFileCount = 8
$KnownFileBytes = 65536
$PageCount = 64
$PageBytes = 4096
$WorkloadMinutes = 60
$WorkloadIntervalMs = 100
$JournalLinePattern = '^seq=([0-9]+) utc=([0-9TZ:.-]{24}) prev=([0-9a-f]{64}) hash=([0-9a-f]{64})$'
$PagePattern = '^page=([0-9]+) seq=([0-9]+) utc=([0-9TZ:.-]{24}) hash=([0-9a-f]{64})\.*$'

$script:Sha = [System.Security.Cryptography.SHA256]::Create()

function New-ResultObject {
  [ordered]@{
    version    = $ResultVersion
    operation  = 'selftest'
    action     = $null
    runId      = $null
    instanceId = $null
    outcome    = 'failed'
    errorCode  = $null
    retryable  = $false
    exitCode   = 1
    message    = ''
    warnings   = @()
    facts      = [ordered]@{}
  }
}

# --- Parameters ---------------------------------------------------------------------------------------

function Read-OptionalParameter([string]$Name, [string]$Value, [string]$Pattern) {
  if ($null -eq $Value) { $Value = '' }
  if ($Value -cnotmatch $Pattern) {
    Stop-WithFailure 'instance' 'script-failed' "Parameter $Name does not match $Pattern."
  }
  $Value
}

function Read-Parameters {
  $volumeIds = Read-OptionalParameter 'VolumeIds' $env:SSM_VolumeIds $OptionalVolumeIdsPattern
  @{
    Action      = Confirm-Parameter 'Action' $env:SSM_Action $ActionPattern
    RunId       = Confirm-Parameter 'RunId' $env:SSM_RunId $RunIdPattern
    DataDrive   = Confirm-Parameter 'DataDrive' $env:SSM_DataDrive $DriveLetterPattern
    VolumeIds   = @($volumeIds.Split(',') | Where-Object { $_ } | Select-Object -Unique)
    Window      = Read-OptionalParameter 'Window' $env:SSM_Window $WindowPattern
    ShadowSetId = Read-OptionalParameter 'ShadowSetId' $env:SSM_ShadowSetId $OptionalGuidPattern
  }
}

# --- Content the test can recognise anywhere ------------------------------------------------------------

function Get-Sha256Hex([byte[]]$Bytes) {
  [System.BitConverter]::ToString($script:Sha.ComputeHash($Bytes)).Replace('-', '').ToLowerInvariant()
}

function Get-TextHash([string]$Text) {
  Get-Sha256Hex ([System.Text.Encoding]::ASCII.GetBytes($Text))
}

# The same bytes for the same run id and index on any instance (System.Random with a seed from SHA-256).
function Get-KnownFileBytes([string]$RunId, [int]$Index) {
  $seed = [System.BitConverter]::ToInt32($script:Sha.ComputeHash([System.Text.Encoding]::ASCII.GetBytes("$RunId/$Index")), 0)
  $bytes = New-Object -TypeName 'byte[]' -ArgumentList $KnownFileBytes
  (New-Object -TypeName System.Random -ArgumentList $seed).NextBytes($bytes)
  # The comma keeps PowerShell from sending the array down the pipeline byte by byte.
  return , $bytes
}

function Get-KnownFilesDigest([string]$RunId) {
  Get-TextHash ((0..($KnownFileCount - 1) | ForEach-Object { Get-Sha256Hex (Get-KnownFileBytes $RunId $_) }) -join ',')
}

function Write-KnownFiles([string]$Folder, [string]$RunId) {
  for ($i = 0; $i -lt $KnownFileCount; $i++) {
    [System.IO.File]::WriteAllBytes((Join-Path $Folder "known-$i.bin"), (Get-KnownFileBytes $RunId $i))
  }
}

function Test-KnownFiles([string]$Folder, [string]$RunId) {
  $facts = [ordered]@{ expected = $KnownFileCount; matching = 0; differing = 0; missing = 0 }
  for ($i = 0; $i -lt $KnownFileCount; $i++) {
    $path = Join-Path $Folder "known-$i.bin"
    if (-not [System.IO.File]::Exists($path)) { $facts.missing++; continue }
    if ((Get-Sha256Hex ([System.IO.File]::ReadAllBytes($path))) -eq (Get-Sha256Hex (Get-KnownFileBytes $RunId $i))) { $facts.matching++ } else { $facts.differing++ }
  }
  $facts
}

# Reads a file the workload may still have open for writing.
function Read-SharedBytes([string]$Path) {
  $stream = New-Object -TypeName System.IO.FileStream -ArgumentList $Path, ([System.IO.FileMode]::Open), ([System.IO.FileAccess]::Read), ([System.IO.FileShare]::ReadWrite)
  try {
    $bytes = New-Object -TypeName 'byte[]' -ArgumentList $stream.Length
    $read = 0
    while ($read -lt $bytes.Length) {
      $n = $stream.Read($bytes, $read, $bytes.Length - $read)
      if ($n -le 0) { break }
      $read += $n
    }
    return , $bytes
  } finally {
    $stream.Dispose()
  }
}

# The journal as a database's log: every complete line must continue the hash chain from the first; only
# the last line may be torn (a write cut by the point in time of a shadow copy or snapshot).
function Read-Journal([string]$Path, [string]$Window) {
  $facts = [ordered]@{ found = $false; entries = 0; lastSeq = 0; firstUtc = $null; lastUtc = $null; chainValid = $false; firstInvalidEntry = $null; tornTail = $false; inWindow = 0 }
  if (-not [System.IO.File]::Exists($Path)) { return $facts }
  $facts.found = $true
  $text = [System.Text.Encoding]::ASCII.GetString((Read-SharedBytes $Path))
  $parts = $text -split "`r`n"
  $complete = @($parts | Select-Object -First ($parts.Count - 1))
  $facts.tornTail = ($parts[-1] -ne '')
  $from = ''
  $to = ''
  if ($Window) { $from, $to = $Window.Split('/') }
  $previous = '0' * 64
  $facts.chainValid = $true
  foreach ($line in $complete) {
    $match = [regex]::Match($line, $JournalLinePattern)
    $seq = $facts.entries + 1
    if (-not $match.Success -or [int64]$match.Groups[1].Value -ne $seq -or $match.Groups[3].Value -ne $previous -or (Get-TextHash ("seq={0} utc={1} prev={2}" -f $match.Groups[1].Value, $match.Groups[2].Value, $match.Groups[3].Value)) -ne $match.Groups[4].Value) {
      $facts.chainValid = $false
      $facts.firstInvalidEntry = $seq
      break
    }
    $utc = $match.Groups[2].Value
    if ($seq -eq 1) { $facts.firstUtc = $utc }
    $facts.entries = $seq
    $facts.lastSeq = $seq
    $facts.lastUtc = $utc
    if ($Window -and ([string]::CompareOrdinal($utc, $from) -gt 0) -and ([string]::CompareOrdinal($utc, $to) -le 0)) { $facts.inWindow++ }
    $previous = $match.Groups[4].Value
  }
  $facts
}

# The pages as a database's data file: every page written must be whole (its own hash matches).
function Read-Pages([string]$Path) {
  $facts = [ordered]@{ found = $false; pages = 0; written = 0; valid = 0 }
  if (-not [System.IO.File]::Exists($Path)) { return $facts }
  $facts.found = $true
  $bytes = Read-SharedBytes $Path
  $facts.pages = [math]::Floor($bytes.Length / $PageBytes)
  for ($i = 0; $i -lt $facts.pages; $i++) {
    $text = [System.Text.Encoding]::ASCII.GetString($bytes, $i * $PageBytes, $PageBytes)
    if ($text.Trim([char]0) -eq '') { continue }
    $facts.written++
    $match = [regex]::Match($text.TrimEnd("`r", "`n"), $PagePattern)
    if ($match.Success -and [int]$match.Groups[1].Value -eq $i -and (Get-TextHash ("page={0} seq={1} utc={2}" -f $match.Groups[1].Value, $match.Groups[2].Value, $match.Groups[3].Value)) -eq $match.Groups[4].Value) {
      $facts.valid++
    }
  }
  $facts
}

# --- The workload -----------------------------------------------------------------------------------------

# The workload's own script, written into the test folder and run by a scheduled task as SYSTEM, so that
# it outlives this command. The folder path is this script's own (a drive letter and a checked run id).
function Get-WorkloadLines([string]$Folder) {
  $lines = @(
    '$ErrorActionPreference = ''Stop'''
    '$folder = ''__FOLDER__'''
    '$stop = Join-Path $folder ''stop.flag'''
    '$sha = [System.Security.Cryptography.SHA256]::Create()'
    'function Get-TextHash([string]$Text) { [System.BitConverter]::ToString($sha.ComputeHash([System.Text.Encoding]::ASCII.GetBytes($Text))).Replace(''-'', '''').ToLowerInvariant() }'
    '$through = [System.IO.FileOptions]::WriteThrough'
    '$journal = New-Object -TypeName System.IO.FileStream -ArgumentList (Join-Path $folder ''journal.log''), ([System.IO.FileMode]::Append), ([System.IO.FileAccess]::Write), ([System.IO.FileShare]::ReadWrite), 4096, $through'
    '$pages = New-Object -TypeName System.IO.FileStream -ArgumentList (Join-Path $folder ''pages.db''), ([System.IO.FileMode]::OpenOrCreate), ([System.IO.FileAccess]::ReadWrite), ([System.IO.FileShare]::ReadWrite), 4096, $through'
    '$pages.SetLength(__PAGECOUNT__ * __PAGEBYTES__)'
    '$previous = ''0'' * 64'
    '$seq = 0'
    '$deadline = (Get-Date).AddMinutes(__MINUTES__)'
    'while (-not (Test-Path -LiteralPath $stop) -and (Get-Date) -lt $deadline) {'
    '  $seq++'
    '  $utc = (Get-Date).ToUniversalTime().ToString(''yyyy-MM-ddTHH:mm:ss.fffZ'')'
    '  $body = "seq=$seq utc=$utc prev=$previous"'
    '  $hash = Get-TextHash $body'
    '  $line = [System.Text.Encoding]::ASCII.GetBytes("$body hash=$hash`r`n")'
    '  $journal.Write($line, 0, $line.Length)'
    '  $journal.Flush($true)'
    '  $page = $seq % __PAGECOUNT__'
    '  $record = "page=$page seq=$seq utc=$utc"'
    '  $record = "$record hash=$(Get-TextHash $record)"'
    '  $bytes = [System.Text.Encoding]::ASCII.GetBytes($record.PadRight(__PAGEBYTES__ - 2, ''.'') + "`r`n")'
    '  $pages.Position = $page * __PAGEBYTES__'
    '  $pages.Write($bytes, 0, $bytes.Length)'
    '  $pages.Flush($true)'
    '  $previous = $hash'
    '  Start-Sleep -Milliseconds __INTERVAL__'
    '}'
    '$journal.Dispose()'
    '$pages.Dispose()'
  )
  $lines | ForEach-Object { $_.Replace('__FOLDER__', $Folder).Replace('__PAGECOUNT__', "$PageCount").Replace('__PAGEBYTES__', "$PageBytes").Replace('__MINUTES__', "$WorkloadMinutes").Replace('__INTERVAL__', "$WorkloadIntervalMs") }
}

function Start-Workload([string]$Folder) {
  $script = Join-Path $Folder 'workload.ps1'
  Set-Content -LiteralPath $script -Value (Get-WorkloadLines $Folder) -Encoding ASCII
  $powershell = Join-Path $PSHOME 'powershell.exe'
  $action = New-ScheduledTaskAction -Execute $powershell -Argument ('-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "{0}"' -f $script)
  $principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest
  $settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit (New-TimeSpan -Minutes ($WorkloadMinutes + 5))
  $null = Register-ScheduledTask -TaskName $TaskName -Action $action -Principal $principal -Settings $settings -Force
  Start-ScheduledTask -TaskName $TaskName
  $journal = Join-Path $Folder 'journal.log'
  $deadline = (Get-Date).AddSeconds(60)
  while ((Get-Date) -lt $deadline) {
    Start-Sleep -Seconds 2
    if ((Read-Journal $journal '').entries -ge 10) { return }
  }
  Stop-WithFailure 'selftest' 'workload-not-running' "The workload (scheduled task $TaskName) wrote fewer than 10 journal entries within 60 s."
}

function Stop-Workload([string]$Folder) {
  if ($Folder -and [System.IO.Directory]::Exists($Folder)) { Set-Content -LiteralPath (Join-Path $Folder 'stop.flag') -Value 'stop' -Encoding ASCII }
  $task = Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue
  if (-not $task) { return $false }
  $deadline = (Get-Date).AddSeconds(30)
  while (((Get-ScheduledTask -TaskName $TaskName).State -eq 'Running') -and (Get-Date) -lt $deadline) { Start-Sleep -Seconds 1 }
  Stop-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue
  Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
  $true
}

# --- Facts about the instance ----------------------------------------------------------------------------

function Get-StateFolderFacts {
  $path = Get-StateDirectory @()
  $security = (Get-Item -LiteralPath $path -Force).GetAccessControl()
  [ordered]@{
    path       = $path
    owner      = $security.GetOwner([System.Security.Principal.SecurityIdentifier]).Value
    protected  = $security.AreAccessRulesProtected
    identities = @($security.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier]) | ForEach-Object { $_.IdentityReference.Value } | Select-Object -Unique)
  }
}

function Get-InstanceFacts([string]$Drive) {
  $os = Get-CimInstance -ClassName Win32_OperatingSystem
  $disks = @(Get-Disk)
  $nitro = @($disks | Where-Object { "$($_.SerialNumber)" -match '^vol[0-9a-f]{8,17}' }).Count -gt 0
  $awsTools = $false
  foreach ($module in @('AWS.Tools.EC2', 'AWSPowerShell')) { if (Get-Module -ListAvailable -Name $module) { $awsTools = $true } }
  $vssAgent = Join-Path $env:ProgramFiles 'Amazon\AwsVssComponents\ec2-vss-agent.exe'
  $facts = [ordered]@{
    os                = "$($os.Caption)"
    osVersion         = "$($os.Version)"
    build             = "$($os.BuildNumber)"
    powershell        = "$($PSVersionTable.PSVersion)"
    languageMode      = "$($ExecutionContext.SessionState.LanguageMode)"
    hypervisor        = $(if ($nitro) { 'nitro' } else { 'xen' })
    diskshadow        = [System.IO.File]::Exists((Join-Path $env:SystemRoot 'System32\diskshadow.exe'))
    awsTools          = $awsTools
    awsVssComponents  = $(if ([System.IO.File]::Exists($vssAgent)) { "$((Get-Item -LiteralPath $vssAgent).VersionInfo.FileVersion)" } else { $null })
    dataVolume        = $null
    shadowStorageHere = $true
    stateFolder       = Get-StateFolderFacts
  }
  $volume = Get-Volume -DriveLetter $Drive -ErrorAction SilentlyContinue
  if (-not $volume) {
    Stop-WithFailure 'selftest' 'data-drive-missing' "There is no volume $($Drive): on this instance: attach and format a data volume (the try-it stack has one) or pass --data-drive."
  }
  $partition = Get-Partition -DriveLetter $Drive
  $disk = $disks | Where-Object { $_.Number -eq $partition.DiskNumber } | Select-Object -First 1
  $serial = "$($disk.SerialNumber)".Trim() -replace '_.*$', ''
  $facts.dataVolume = [ordered]@{
    drive      = $Drive
    fileSystem = "$($volume.FileSystem)"
    sizeBytes  = [int64]$volume.Size
    diskNumber = [int]$partition.DiskNumber
    volumeId   = $(if ($serial -match '^vol[0-9a-f]{8,17}$') { $serial -replace '^vol', 'vol-' } else { $null })
  }
  foreach ($storage in @(Get-CimInstance -ClassName Win32_ShadowStorage -ErrorAction SilentlyContinue)) {
    if ("$($storage.Volume.DeviceID)" -eq "$($volume.Path)" -and "$($storage.DiffVolume.DeviceID)" -ne "$($volume.Path)") { $facts.shadowStorageHere = $false }
  }
  $facts
}

# --- Actions -------------------------------------------------------------------------------------------------

function Get-TestFolder([string]$Drive, [string]$RunId) {
  Join-Path ('{0}:\vss-selftest' -f $Drive) $RunId
}

function Invoke-Prepare($Params, $Facts) {
  $instance = Get-InstanceFacts $Params.DataDrive
  foreach ($key in $instance.Keys) { $Facts[$key] = $instance[$key] }
  $null = Initialize-TrustedDirectory ('{0}:\vss-selftest' -f $Params.DataDrive)
  $folder = Initialize-TrustedDirectory (Get-TestFolder $Params.DataDrive $Params.RunId)
  Write-KnownFiles $folder $Params.RunId
  $Facts.knownFiles = [ordered]@{ count = $KnownFileCount; bytes = $KnownFileBytes; digest = Get-KnownFilesDigest $Params.RunId }
  Start-Workload $folder
  $Facts.workload = [ordered]@{ task = $TaskName; folder = $folder; intervalMs = $WorkloadIntervalMs; journal = Read-Journal (Join-Path $folder 'journal.log') '' }
}

function Invoke-Stop($Params, $Facts) {
  $folder = Get-TestFolder $Params.DataDrive $Params.RunId
  $Facts.workloadStopped = Stop-Workload $folder
  $Facts.journal = Read-Journal (Join-Path $folder 'journal.log') $Params.Window
  $Facts.pages = Read-Pages (Join-Path $folder 'pages.db')
  $Facts.knownFiles = Test-KnownFiles $folder $Params.RunId
}

# A restored disk: online, with a new signature when it collides with its source (the aws-vss restore
# runs nothing on the instance, so the disk may still be offline).
function Get-RestoredVolumeFacts([string]$VolumeId, [string]$RunId, [string]$Work) {
  $disk = Find-VolumeDisk $VolumeId
  $facts = [ordered]@{ volumeId = $VolumeId; diskNumber = [int]$disk.Number; folder = $null; knownFiles = $null; journal = $null; pages = $null }
  if ($disk.IsOffline -and (Test-DiskIdentityCollision $disk)) { Repair-DiskIdentity $disk $Work }
  if ($disk.IsOffline) { Set-Disk -Number $disk.Number -IsOffline $false }
  if ($disk.IsReadOnly) { Set-Disk -Number $disk.Number -IsReadOnly $false }
  $deadline = (Get-Date).AddSeconds(60)
  while ((Get-Date) -lt $deadline) {
    foreach ($path in @(Get-Partition -DiskNumber $disk.Number | ForEach-Object { $_.AccessPaths } | Where-Object { $_ })) {
      # Path.Combine, not Join-Path: an access path may be a volume GUID path (\\?\Volume{...}\).
      $candidate = [System.IO.Path]::Combine($path, 'vss-selftest', $RunId)
      if ([System.IO.Directory]::Exists($candidate)) { $facts.folder = $candidate; break }
    }
    if ($facts.folder) { break }
    Start-Sleep -Seconds 5
  }
  if ($facts.folder) {
    $facts.knownFiles = Test-KnownFiles $facts.folder $RunId
    $facts.journal = Read-Journal (Join-Path $facts.folder 'journal.log') ''
    $facts.pages = Read-Pages (Join-Path $facts.folder 'pages.db')
  }
  $facts
}

function Invoke-Verify($Params, $Facts) {
  $work = Get-StateDirectory @('selftest', [guid]::NewGuid().ToString('N'))
  $script:Work = $work
  $Facts.volumes = @($Params.VolumeIds | ForEach-Object { Get-RestoredVolumeFacts $_ $Params.RunId $work })
}

function Invoke-Cleanup($Params, $Facts) {
  $folder = Get-TestFolder $Params.DataDrive $Params.RunId
  $Facts.workloadStopped = Stop-Workload $folder
  Remove-TreeSafely $folder
  $Facts.folderRemoved = -not [System.IO.Directory]::Exists($folder)
  $Facts.shadowCopiesLeft = @()
  if ($Params.ShadowSetId) {
    $Facts.shadowCopiesLeft = @(Get-CimInstance -ClassName Win32_ShadowCopy | Where-Object { (ConvertTo-GuidText $_.SetID) -eq $Params.ShadowSetId } | ForEach-Object { "$($_.ID) on $($_.VolumeName)" })
  }
}

function Invoke-SelfTest {
  $result = $script:Result
  Assert-FullLanguage
  $params = Read-Parameters
  $result.action = $params.Action
  $result.runId = $params.RunId
  $token = Get-ImdsToken
  $result.instanceId = Get-ImdsValue $token 'instance-id'
  Write-Log "Self-test $($params.RunId): $($params.Action) on $($result.instanceId), data drive $($params.DataDrive)."
  switch ($params.Action) {
    'prepare' { Invoke-Prepare $params $result.facts }
    'stop' { Invoke-Stop $params $result.facts }
    'verify' { Invoke-Verify $params $result.facts }
    'cleanup' { Invoke-Cleanup $params $result.facts }
  }
  $result.outcome = 'success'
  $result.message = "Self-test $($params.Action) done."
}

function Complete-SelfTestCleanup {
  if ($script:Work) { Remove-TreeSafely $script:Work }
}

$script:Work = $null

Invoke-Main -Body { Invoke-SelfTest } -Cleanup { Complete-SelfTestCleanup }
