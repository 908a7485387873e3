<#
  vss-snapshots: the shared prelude of every SSM document built from src/scripts.

  src/documents/build-documents.ts puts this file in front of each document's own script
  (diskshadow-snapshot.ps1, diskshadow-restore.ps1, ...), so what every script needs - logging, the result
  line, instance metadata, parameter checks, the main try/catch/finally - is written and fixed once.

  Each document's own script defines before calling Invoke-Main:
    $ExitCodes            stage-retryable / stage-permanent exit codes (src/lib/result-line.ts)
    $FailureRetryable     every errorCode it reports, with whether another attempt can help
    $MaxResultLineLength  the longest result line the orchestrator can read back (see Format-ResultLine)
    New-ResultObject      the result line's fields with their defaults
#>

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
$VerbosePreference = 'SilentlyContinue'
$InformationPreference = 'SilentlyContinue'

$ResultPrefix = 'VSS-SNAPSHOTS-RESULT'
$ResultVersion = 1
$ImdsBase = 'http://169.254.169.254/latest'
$MaxMessageLength = 400
$CompactMessageLength = 200

# Same patterns as the document parameters (src/documents/document-parameters.ts).
$RunIdPattern = '^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$'
$GuidPattern = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

$script:Log = @()
$script:Failure = $null
$script:Warnings = @()
$script:Result = $null
$script:ExitCode = 1

# --- Log and result line -------------------------------------------------------------------------------

# Millisecond UTC timestamps: the self-test compares them with the times written by its own workload.
function Write-Log([string]$Message) {
  $script:Log += ('{0} {1}' -f (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ss.fffZ'), $Message)
}

function Add-Warning([string]$Message) {
  $script:Warnings += $Message
  Write-Log "WARNING: $Message"
}

# Stops the script with a classified failure; $Stage names the exit code pair in $ExitCodes.
function Stop-WithFailure([string]$Stage, [string]$Code, [string]$Message) {
  $script:Failure = @{ Stage = $Stage; Code = $Code; Message = $Message }
  throw "vss-snapshots failure $($Code): $Message"
}

function Get-ExitCodeFor([string]$Stage, [string]$Code) {
  $retryable = [bool]$FailureRetryable[$Code]
  if ($retryable) { $ExitCodes["$Stage-retryable"] } else { $ExitCodes["$Stage-permanent"] }
}

function ConvertTo-ResultJson($Result) {
  Remove-TypeData -TypeName System.Array -ErrorAction SilentlyContinue
  $json = ConvertTo-Json -InputObject $Result -Compress -Depth 6
  try {
    # Non-ASCII as \uXXXX: the line must survive any console code page unchanged.
    $json = [regex]::Replace($json, '[^\x20-\x7E]', { param($m) '\u{0:x4}' -f [int][char]$m.Value })
  } catch {
    Write-Log "Could not escape non-ASCII characters: $($_.Exception.Message)"
  }
  "$ResultPrefix $json"
}

# The line, shortened to $MaxResultLineLength characters step by step until it fits (the same steps as
# compactResultLine in src/lib/result-line.ts): warnings after the second become one note, then the
# volumes, the snapshot ids, the end of the message and the other warnings are left out, and a last
# warning says so. The snapshot line is read through ListCommandInvocations, which returns only the first
# 2,500 characters of the output; error code, exit code and shadow set id always survive.
function Format-ResultLine($Result) {
  $line = ConvertTo-ResultJson $Result
  if ($line.Length -le $MaxResultLineLength) { return $line }
  $original = @($Result.warnings)
  $kept = @($original)
  if ($original.Count -gt 2) { $kept = @($original[0], $original[1], "($($original.Count - 2) more warnings in the log)") }
  $omitted = @()
  for ($step = 1; $step -le 5; $step++) {
    switch ($step) {
      1 { $Result.warnings = @($kept) }
      2 { if ($Result.Contains('volumes')) { $Result.volumes = @() }; $omitted += 'volumes' }
      3 { if ($Result.Contains('snapshots')) { $Result.snapshots = @() }; $omitted += 'snapshot ids' }
      4 {
        if ("$($Result.message)".Length -gt $CompactMessageLength) { $Result.message = "$($Result.message)".Substring(0, $CompactMessageLength - 3) + '...' }
        $omitted += 'the end of the message'
      }
      5 { $omitted += 'warnings' }
    }
    if ($step -ge 2) {
      $note = "Result line shortened to $MaxResultLineLength characters ($($omitted -join ', ') left out); the log has everything."
      if ($step -eq 5) { $Result.warnings = @($note) } else { $Result.warnings = @($kept) + $note }
    }
    $line = ConvertTo-ResultJson $Result
    if ($line.Length -le $MaxResultLineLength) { break }
  }
  $line
}

function Write-Stdout([string]$Line) {
  try { [Console]::Out.WriteLine($Line) } catch { Write-Output $Line }
}

function Limit-Text([string]$Text) {
  if ($null -eq $Text) { return '' }
  $oneLine = ($Text -replace '\s+', ' ').Trim()
  if ($oneLine.Length -le $MaxMessageLength) { return $oneLine }
  $oneLine.Substring(0, $MaxMessageLength - 3) + '...'
}

# --- Instance metadata: IMDSv2 only -------------------------------------------------------------------

function Get-ImdsToken {
  $headers = @{ 'X-aws-ec2-metadata-token-ttl-seconds' = '300' }
  $lastError = $null
  foreach ($try in 1..3) {
    try {
      return Invoke-RestMethod -Method Put -Uri "$ImdsBase/api/token" -Headers $headers -TimeoutSec 5 -UseBasicParsing
    } catch {
      $lastError = $_.Exception.Message
      Start-Sleep -Seconds $try
    }
  }
  Stop-WithFailure 'instance' 'script-failed' "The instance metadata service did not issue an IMDSv2 token: $lastError"
}

function Get-ImdsValue([string]$Token, [string]$Path) {
  $headers = @{ 'X-aws-ec2-metadata-token' = $Token }
  $lastError = $null
  foreach ($try in 1..3) {
    try {
      return Invoke-RestMethod -Method Get -Uri "$ImdsBase/meta-data/$Path" -Headers $headers -TimeoutSec 5 -UseBasicParsing
    } catch {
      $lastError = $_.Exception.Message
      Start-Sleep -Seconds $try
    }
  }
  Stop-WithFailure 'instance' 'script-failed' "The instance metadata service did not answer meta-data/$($Path): $lastError"
}

# --- Parameters and prerequisites ---------------------------------------------------------------------

# Parameters are read only from the SSM_* environment variables, never pasted into the script text.
function Confirm-Parameter([string]$Name, [string]$Value, [string]$Pattern) {
  if ([string]::IsNullOrEmpty($Value)) {
    Stop-WithFailure 'instance' 'script-failed' "Parameter $Name is missing (environment variable SSM_$Name). The document needs SSM Agent 3.3.2746.0 or later for ENV_VAR interpolation."
  }
  if ($Value -cnotmatch $Pattern) {
    Stop-WithFailure 'instance' 'script-failed' "Parameter $Name does not match $Pattern."
  }
  $Value
}

# Checked first: in ConstrainedLanguage most of these scripts cannot run.
function Assert-FullLanguage {
  $mode = $ExecutionContext.SessionState.LanguageMode
  if ("$mode" -ne 'FullLanguage') {
    Stop-WithFailure 'instance' 'language-mode' "PowerShell runs in $mode language mode; this script needs FullLanguage (check the AppLocker/WDAC policy for the SSM Agent)."
  }
}

function Get-DiskShadowPath {
  $path = Join-Path $env:SystemRoot 'System32\diskshadow.exe'
  if (-not (Test-Path -LiteralPath $path)) {
    Stop-WithFailure 'instance' 'script-failed' "DiskShadow was not found at $path (Windows Server is required)."
  }
  $path
}

function ConvertTo-GuidText([string]$Text) {
  if ($null -eq $Text) { return $null }
  $guid = $Text.Trim().Trim('{', '}').ToLowerInvariant()
  if ($guid -cmatch $GuidPattern) { return $guid }
  $null
}

# --- Native programs ---------------------------------------------------------------------------------

# Runs a native program; returns its exit code and its output (stdout and stderr) as text lines.
# Windows PowerShell 5.1 turns each stderr line of a native command redirected with 2>&1 into an
# ErrorRecord, and under $ErrorActionPreference = 'Stop' the first one is a terminating error
# (PowerShell/PowerShell#3996; PowerShell 7.1 changed it, #13361): a tool that prints a warning to stderr
# would abort the cleanup that called it. So the preference is Continue here, in this function's scope
# only, and the exit code decides. The only 2>&1 of these scripts (checked by the tests).
function Invoke-NativeCommand([string]$FilePath, [string[]]$Arguments) {
  $ErrorActionPreference = 'Continue'
  try {
    $lines = @(& $FilePath @Arguments 2>&1 | ForEach-Object { "$_" })
    @{ ExitCode = $LASTEXITCODE; Output = $lines }
  } catch {
    @{ ExitCode = -1; Output = @("$FilePath could not be run: $($_.Exception.Message)") }
  }
}

function Get-SystemTool([string]$Name) {
  Join-Path $env:SystemRoot "System32\$Name"
}

# Stop-Process ends only the process itself: DiskShadow's "exec" step runs cmd.exe, which runs ping, and
# they would live on. taskkill /T ends the process and every child it started, /F forcefully (Windows
# Commands reference, "taskkill").
function Stop-ProcessTree([int]$ProcessId) {
  $run = Invoke-NativeCommand (Get-SystemTool 'taskkill.exe') @('/PID', "$ProcessId", '/T', '/F')
  foreach ($line in $run.Output) { Write-Log "taskkill: $line" }
  $run.ExitCode -eq 0
}

# --- EBS disks (a document using these sets $DiskWaitSeconds and has the 'disk' stage in $ExitCodes) -----

# On Nitro instances an EBS disk's serial number is its volume id without the dash (vol0123..., with a
# suffix on some drivers).
function Find-VolumeDisk([string]$VolumeId) {
  $serial = $VolumeId.Replace('-', '')
  $deadline = (Get-Date).AddSeconds($DiskWaitSeconds)
  while ($true) {
    $disk = @(Get-Disk | Where-Object { ("$($_.SerialNumber)".Trim() -replace '_.*$', '') -eq $serial }) | Select-Object -First 1
    if ($disk) { return $disk }
    if ((Get-Date) -gt $deadline) {
      Stop-WithFailure 'disk' 'disk-not-found' "No disk with the serial number of $VolumeId appeared within $DiskWaitSeconds s. Is the volume attached to this instance (a Nitro instance: Xen PV disks are not matched)?"
    }
    Start-Sleep -Seconds 5
    Update-HostStorageCache -ErrorAction SilentlyContinue
  }
}

function Test-DiskIdentityCollision($Disk) {
  foreach ($other in @(Get-Disk | Where-Object { $_.Number -ne $Disk.Number })) {
    if ($Disk.PartitionStyle -eq 'MBR' -and $other.PartitionStyle -eq 'MBR' -and $Disk.Signature -and ($Disk.Signature -eq $other.Signature)) { return $true }
    if ($Disk.PartitionStyle -eq 'GPT' -and $other.PartitionStyle -eq 'GPT' -and $Disk.Guid -and ($Disk.Guid -eq $other.Guid)) { return $true }
  }
  $false
}

function New-DiskSignature {
  $used = @(Get-Disk | ForEach-Object { [uint32]$_.Signature })
  do {
    $signature = [uint32](Get-Random -Minimum 1 -Maximum ([int]::MaxValue))
  } while ($used -contains $signature)
  $signature
}

# Windows keeps a disk whose signature (MBR) or id (GPT) is already in use offline ("signature
# collision"). Only the restored disk gets a new identity; the other disk is never touched.
function Repair-DiskIdentity($Disk, [string]$Work) {
  $number = [int]$Disk.Number
  try {
    if ($Disk.PartitionStyle -eq 'GPT') {
      Set-Disk -Number $number -Guid ([guid]::NewGuid().ToString('B'))
    } else {
      Set-Disk -Number $number -Signature (New-DiskSignature)
    }
    return
  } catch {
    Write-Log "Set-Disk could not change the identity of disk $($number): $($_.Exception.Message); trying diskpart."
  }
  if ($Disk.PartitionStyle -eq 'GPT') {
    $newId = [guid]::NewGuid().ToString('D')
  } else {
    $newId = '{0:X8}' -f (New-DiskSignature)
  }
  $scriptFile = Join-Path $Work "uniqueid-$number.txt"
  Set-Content -LiteralPath $scriptFile -Value @("select disk $number", "uniqueid disk id=$newId") -Encoding ASCII
  $run = Invoke-NativeCommand (Get-SystemTool 'diskpart.exe') @('/s', $scriptFile)
  foreach ($line in $run.Output) { Write-Log "diskpart: $line" }
  if ($run.ExitCode -ne 0) {
    Stop-WithFailure 'disk' 'signature-fix-failed' "Disk $number has the same signature as another disk and could not be given a new one."
  }
}

# --- The state folder: C:\ProgramData\vss-snapshots ----------------------------------------------------

# C:\ProgramData lets every user create folders, and whoever creates one owns it and may change its ACL.
# A folder an ordinary user made there in advance would hold the DiskShadow script and the batch file
# DiskShadow runs as SYSTEM ("exec"), or a junction that redirects what these scripts write or delete. So
# every folder is created with its security descriptor in the same call (.NET
# Directory.CreateDirectory(String, DirectorySecurity)): protected from inheritance, full control for
# LocalSystem and BUILTIN\Administrators only. An existing folder is used only if one of them owns it and
# it is not a reparse point; otherwise it is moved aside (a warning names it) and created anew.
$StateFolderName = 'vss-snapshots'
$TrustedOwnerSids = @('S-1-5-18', 'S-1-5-32-544')

function New-TrustedDirectorySecurity {
  $security = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
  $security.SetAccessRuleProtection($true, $false)
  foreach ($sid in $TrustedOwnerSids) {
    $identity = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $sid
    $rule = New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList $identity, 'FullControl', 'ContainerInherit, ObjectInherit', 'None', 'Allow'
    $security.AddAccessRule($rule)
  }
  $security
}

# True when the file or folder is not a reparse point (junction, symbolic link) and SYSTEM or the
# Administrators group owns it.
function Test-TrustedItem([string]$Path) {
  $item = Get-Item -LiteralPath $Path -Force -ErrorAction SilentlyContinue
  if (-not $item) { return $false }
  if ($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) { return $false }
  $owner = $item.GetAccessControl('Owner').GetOwner([System.Security.Principal.SecurityIdentifier]).Value
  $TrustedOwnerSids -contains $owner
}

function Initialize-TrustedDirectory([string]$Path) {
  if ((Test-Path -LiteralPath $Path) -and -not (Test-TrustedItem $Path)) {
    $aside = '{0}.untrusted-{1}' -f $Path, (Get-Date).ToUniversalTime().ToString('yyyyMMddTHHmmssfffZ')
    $item = Get-Item -LiteralPath $Path -Force
    if ($item.PSIsContainer) { [System.IO.Directory]::Move($Path, $aside) } else { [System.IO.File]::Move($Path, $aside) }
    Add-Warning "$Path was not created by SYSTEM or an administrator (another owner, or a junction): moved to $aside. Find out who created it."
  }
  if (Test-Path -LiteralPath $Path) {
    (Get-Item -LiteralPath $Path -Force).SetAccessControl((New-TrustedDirectorySecurity))
  } else {
    $null = [System.IO.Directory]::CreateDirectory($Path, (New-TrustedDirectorySecurity))
  }
  if (-not (Test-TrustedItem $Path)) {
    Stop-WithFailure 'instance' 'script-failed' "$Path could not be made a folder only SYSTEM and Administrators control."
  }
  $Path
}

# The state folder, or a folder below it (each level checked as above).
function Get-StateDirectory([string[]]$Names) {
  $path = Initialize-TrustedDirectory (Join-Path $env:ProgramData $StateFolderName)
  foreach ($name in $Names) { $path = Initialize-TrustedDirectory (Join-Path $path $name) }
  $path
}

# Windows PowerShell 5.1's Remove-Item -Recurse descends into directory junctions and symbolic links and
# deletes what they point to (PowerShell/PowerShell#621, fixed in PowerShell 6 by #3637). This deletes a
# tree depth-first and a reparse point itself, never its target.
function Remove-TreeSafely([string]$Path) {
  $item = Get-Item -LiteralPath $Path -Force -ErrorAction SilentlyContinue
  if (-not $item) { return }
  if ($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) {
    if ($item.PSIsContainer) { [System.IO.Directory]::Delete($item.FullName, $false) } else { [System.IO.File]::Delete($item.FullName) }
    return
  }
  if ($item.PSIsContainer) {
    foreach ($child in @(Get-ChildItem -LiteralPath $item.FullName -Force)) { Remove-TreeSafely $child.FullName }
    [System.IO.Directory]::Delete($item.FullName, $false)
  } else {
    [System.IO.File]::SetAttributes($item.FullName, [System.IO.FileAttributes]::Normal)
    [System.IO.File]::Delete($item.FullName)
  }
}

# --- Main -------------------------------------------------------------------------------------------------

# Runs the document's body, classifies a failure, runs the cleanup whatever happened, prints the result
# line FIRST on stdout and the log after it, and exits with the classified exit code.
function Invoke-Main([scriptblock]$Body, [scriptblock]$Cleanup) {
  $script:Result = New-ResultObject
  try {
    $stray = @(& $Body 3>&1 4>&1 6>&1)
    foreach ($item in $stray) { Write-Log "output: $item" }
    $script:ExitCode = 0
  } catch {
    if ($script:Failure) {
      $script:Result.errorCode = $script:Failure.Code
      $script:Result.retryable = [bool]$FailureRetryable[$script:Failure.Code]
      $script:Result.message = $script:Failure.Message
      $script:ExitCode = Get-ExitCodeFor $script:Failure.Stage $script:Failure.Code
    } else {
      $script:Result.errorCode = 'script-failed'
      $script:Result.retryable = $true
      $script:Result.message = "Unexpected error: $($_.Exception.Message)"
      $script:ExitCode = $ExitCodes['unexpected']
    }
    Write-Log "FAILED: $($script:Result.message)"
    Write-Log "$($_.ScriptStackTrace)"
  } finally {
    try {
      if ($Cleanup) { & $Cleanup }
    } catch {
      if ($script:Result.Contains('cleanup')) { $script:Result.cleanup = 'failed' }
      Add-Warning "Cleanup failed: $($_.Exception.Message)"
    }
    $script:Result.exitCode = $script:ExitCode
    $script:Result.message = Limit-Text $script:Result.message
    $script:Result.warnings = @($script:Warnings | ForEach-Object { Limit-Text $_ })
    Write-Stdout (Format-ResultLine $script:Result)
    foreach ($line in $script:Log) { Write-Stdout $line }
  }
  exit $script:ExitCode
}
