<#
.SYNOPSIS
Runs `local-mcp serve` in the background on Windows (PowerShell 5.1 or 7).

.DESCRIPTION
The PowerShell twin of scripts/server.sh:

  .\scripts\server.ps1 start | stop | restart | status | logs [-f] [N]

start    launch `local-mcp serve` hidden, write its PID file, wait until GET /healthz
         answers (at most LOCAL_MCP_START_TIMEOUT seconds, default 10) and print the URL.
         On failure it prints the end of the log and stops what it started. Already
         running: says so, exit 0. A PID file whose process is gone is removed first.
stop     end the process and remove the PID file. Not running: says so, exit 0.
         Windows has no SIGTERM a script can send to a console program, so the
         process is ended at once (Stop-Process); local-mcp writes every
         acknowledged change to disk before answering, so nothing is lost. Under
         PowerShell 7 on Linux or macOS it sends SIGTERM first, like server.sh.
restart  stop, then start.
status   running or stopped, PID, URL and whether /healthz answers; exit 0 running,
         3 stopped.
logs     the last N lines of the server log (default 50); -f keeps following it.

Where things go: the state folder is $env:LOCAL_MCP_HOME, else
%LOCALAPPDATA%\local-mcp (on Linux/macOS: ${XDG_STATE_HOME:-~/.local/state}/local-mcp).
It holds local-mcp.pid, local-mcp.url and logs\server.log (local-mcp's log output).
Start-Process cannot append, so each start moves the previous log to
logs\server.log.1.

Which binary: $env:LOCAL_MCP_BIN, else local-mcp on PATH, else
target\release\local-mcp.exe or target\debug\local-mcp.exe in this repository.

The environment is passed through unchanged, e.g.
  $env:HTTP_PORT = 8001; .\scripts\server.ps1 start

If scripts are blocked: powershell -ExecutionPolicy Bypass -File scripts\server.ps1 start
#>
param(
    [Parameter(Position = 0)] [string] $Command = '',
    # `logs [-f] [N]`: -f (or -Follow) and N are parameters of their own, since
    # PowerShell reads anything starting with a dash as a parameter name.
    [Parameter(Position = 1)] [string] $Lines = '',
    [Alias('Follow')] [switch] $f,
    [Alias('h')] [switch] $Help
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$Prog = 'server.ps1'
$RepoDir = Split-Path -Parent $PSScriptRoot
$OnWindows = ($PSVersionTable.PSVersion.Major -lt 6) -or $IsWindows

if ($env:LOCAL_MCP_HOME) {
    $HomeDir = $env:LOCAL_MCP_HOME
} elseif ($OnWindows) {
    $HomeDir = Join-Path $env:LOCALAPPDATA 'local-mcp'
} elseif ($env:XDG_STATE_HOME) {
    $HomeDir = Join-Path $env:XDG_STATE_HOME 'local-mcp'
} else {
    $HomeDir = Join-Path (Join-Path $HOME '.local/state') 'local-mcp'
}
$PidFile = Join-Path $HomeDir 'local-mcp.pid'
$UrlFile = Join-Path $HomeDir 'local-mcp.url'
$LogDir = Join-Path $HomeDir 'logs'
$LogFile = Join-Path $LogDir 'server.log'
$OutFile = Join-Path $LogDir 'server.stdout.log'
$StartTimeout = if ($env:LOCAL_MCP_START_TIMEOUT) { [int] $env:LOCAL_MCP_START_TIMEOUT } else { 10 }
$StopTimeout = if ($env:LOCAL_MCP_STOP_TIMEOUT) { [int] $env:LOCAL_MCP_STOP_TIMEOUT } else { 10 }

function Show-Usage {
    @"
Usage: scripts\server.ps1 COMMAND

Run local-mcp's HTTP server (local-mcp serve) in the background.

Commands:
  start          start it in the background, wait until /healthz answers, print the URL
  stop           stop it
  restart        stop, then start
  status         running or stopped, PID and URL; exit 0 running, 3 stopped
  logs [-f] [N]  the last N lines of its log (default 50); -f follows the log
  help           this text

Files (state folder: `$env:LOCAL_MCP_HOME, else %LOCALAPPDATA%\local-mcp):
  PID file  $PidFile
  log       $LogFile

Binary: `$env:LOCAL_MCP_BIN, else local-mcp on PATH, else target\release or
target\debug in this repository. The environment goes to local-mcp unchanged, e.g.
  `$env:HTTP_PORT = 8001; .\scripts\server.ps1 start
Timeouts: LOCAL_MCP_START_TIMEOUT (default 10 s), LOCAL_MCP_STOP_TIMEOUT (default 10 s).
"@
}

function Fail([string] $Message) {
    [Console]::Error.WriteLine("${Prog}: error: $Message")
    exit 1
}

function Read-PidFile {
    if (-not (Test-Path -LiteralPath $PidFile)) { return $null }
    $text = (Get-Content -LiteralPath $PidFile -TotalCount 1 -ErrorAction SilentlyContinue)
    if ($text -match '^\s*(\d+)\s*$') { return [int] $Matches[1] }
    return $null
}

# The process with this PID if it is a live local-mcp (not some other process that got the PID).
function Get-Server($ProcessId) {
    if ($null -eq $ProcessId) { return $null }
    $p = Get-Process -Id $ProcessId -ErrorAction SilentlyContinue
    if ($null -eq $p) { return $null }
    try { if ($p.HasExited) { return $null } } catch { return $null } # another user's process
    $names = @('local-mcp')
    if ($env:LOCAL_MCP_BIN) { $names += [IO.Path]::GetFileNameWithoutExtension($env:LOCAL_MCP_BIN) }
    if ($names -contains $p.ProcessName) { return $p }
    return $null
}

function Get-EnvUrl {
    $h = if ($env:HOST) { $env:HOST } else { '127.0.0.1' }
    $port = if ($env:HTTP_PORT) { $env:HTTP_PORT } else { '8000' }
    if ($h.Contains(':')) { $h = "[$h]" }
    return "http://${h}:$port"
}

# A URL this machine can reach: a wildcard bind address becomes loopback.
function Get-LocalUrl([string] $Url) {
    return $Url.Replace('://0.0.0.0:', '://127.0.0.1:').Replace('://[::]:', '://[::1]:')
}

# The URL in the last "local-mcp listening on URL" line of the log.
function Get-ListeningUrl {
    if (-not (Test-Path -LiteralPath $LogFile)) { return $null }
    $found = $null
    foreach ($line in (Get-Content -LiteralPath $LogFile -ErrorAction SilentlyContinue)) {
        if ($line -match 'local-mcp listening on (https?://[^\s"\x1b]+)') { $found = $Matches[1] }
    }
    return $found
}

function Test-Healthz([string] $Url) {
    try {
        $r = Invoke-WebRequest -Uri "$Url/healthz" -UseBasicParsing -TimeoutSec 2
        return $r.StatusCode -eq 200
    } catch {
        return $false
    }
}

function Find-Binary {
    if ($env:LOCAL_MCP_BIN) {
        if (-not (Test-Path -LiteralPath $env:LOCAL_MCP_BIN -PathType Leaf)) {
            Fail "LOCAL_MCP_BIN=$($env:LOCAL_MCP_BIN) is not a file"
        }
        return (Resolve-Path -LiteralPath $env:LOCAL_MCP_BIN).Path
    }
    $cmd = Get-Command local-mcp -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($cmd) { return $cmd.Source }
    $exe = if ($OnWindows) { 'local-mcp.exe' } else { 'local-mcp' }
    $dirs = @()
    if ($env:CARGO_TARGET_DIR) { $dirs += $env:CARGO_TARGET_DIR }
    $dirs += (Join-Path $RepoDir 'target')
    foreach ($d in $dirs) {
        foreach ($prof in 'release', 'debug') {
            $candidate = Join-Path (Join-Path $d $prof) $exe
            if (Test-Path -LiteralPath $candidate -PathType Leaf) { return $candidate }
        }
    }
    Fail ("cannot find the local-mcp binary. Install it (cargo install --path bins/local-mcp),`n" +
        "  build it here (cargo build --release -p local-mcp), or set `$env:LOCAL_MCP_BIN to its path")
}

function Wait-Gone($Process, [int] $Seconds) {
    try { return $Process.WaitForExit($Seconds * 1000) } catch { return $true }
}

function Stop-Server($Process, [int] $Seconds) {
    if (-not $OnWindows) {
        $killCmd = Get-Command kill -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
        if ($killCmd) { & $killCmd.Source -s TERM $Process.Id 2>$null }
        if (Wait-Gone $Process $Seconds) { return }
        Write-Output "local-mcp (PID $($Process.Id)) did not stop within $Seconds s; sending SIGKILL"
    }
    Stop-Process -Id $Process.Id -Force -ErrorAction SilentlyContinue
    if (-not (Wait-Gone $Process 5)) { Fail "process $($Process.Id) is still there after Stop-Process" }
}

function Remove-State {
    Remove-Item -LiteralPath $PidFile, $UrlFile -Force -ErrorAction SilentlyContinue
}

function Show-LogTail([int] $Lines) {
    [Console]::Error.WriteLine("last lines of ${LogFile}:")
    if (Test-Path -LiteralPath $LogFile) {
        foreach ($line in (Get-Content -LiteralPath $LogFile -Tail $Lines)) {
            [Console]::Error.WriteLine("  | $line")
        }
    }
}

function Invoke-Start {
    $procId = Read-PidFile
    if (Get-Server $procId) {
        $url = if (Test-Path -LiteralPath $UrlFile) { (Get-Content -LiteralPath $UrlFile -TotalCount 1) } else { Get-EnvUrl }
        Write-Output "local-mcp is already running (PID $procId): $url"
        return
    }
    if (Test-Path -LiteralPath $PidFile) {
        Write-Output "removing stale PID file $PidFile (process $procId is gone)"
        Remove-State
    }
    $bin = Find-Binary
    try {
        New-Item -ItemType Directory -Force -Path $LogDir | Out-Null
    } catch {
        Fail "cannot create the log folder $LogDir (set `$env:LOCAL_MCP_HOME to a writable folder)"
    }
    if (Test-Path -LiteralPath $LogFile) { Move-Item -LiteralPath $LogFile -Destination "$LogFile.1" -Force }

    $startArgs = @{
        FilePath               = $bin
        ArgumentList           = 'serve'
        RedirectStandardError  = $LogFile
        RedirectStandardOutput = $OutFile
        PassThru               = $true
    }
    if ($OnWindows) { $startArgs.WindowStyle = 'Hidden' }
    $proc = Start-Process @startArgs
    Set-Content -LiteralPath $PidFile -Value $proc.Id -Encoding ascii

    $watch = [Diagnostics.Stopwatch]::StartNew()
    $url = $null
    while ($true) {
        if ($proc.HasExited) {
            Remove-State
            [Console]::Error.WriteLine("${Prog}: error: local-mcp exited during start-up")
            Show-LogTail 20
            exit 1
        }
        $url = Get-ListeningUrl
        # Without the listening line (LOG_LEVEL above info), try HOST/HTTP_PORT after a moment.
        if (-not $url -and $watch.Elapsed.TotalSeconds -ge 2) { $url = Get-EnvUrl }
        if ($url) {
            $url = Get-LocalUrl $url
            if (Test-Healthz $url) { break }
        }
        if ($watch.Elapsed.TotalSeconds -ge $StartTimeout) {
            Stop-Process -Id $proc.Id -Force -ErrorAction SilentlyContinue
            Remove-State
            $where = if ($url) { $url } else { 'the server' }
            [Console]::Error.WriteLine("${Prog}: error: no answer from $where/healthz within $StartTimeout s (raise LOCAL_MCP_START_TIMEOUT if it needs longer)")
            Show-LogTail 20
            exit 1
        }
        Start-Sleep -Milliseconds 200
    }
    Set-Content -LiteralPath $UrlFile -Value $url -Encoding ascii
    Write-Output "local-mcp started (PID $($proc.Id)): $url"
    Write-Output "  web UI $url/   MCP $url/mcp"
    Write-Output "  logs   $LogFile   (scripts\server.ps1 logs -f)"
}

function Invoke-Stop {
    $procId = Read-PidFile
    if ($null -eq $procId) {
        Remove-State
        Write-Output "local-mcp is not running (no PID file at $PidFile)"
        return
    }
    $p = Get-Server $procId
    if (-not $p) {
        Remove-State
        Write-Output "local-mcp is not running (process $procId is gone; removed its stale PID file)"
        return
    }
    Stop-Server $p $StopTimeout
    Remove-State
    Write-Output "local-mcp stopped (PID $procId)"
}

function Invoke-Status {
    $procId = Read-PidFile
    if (Get-Server $procId) {
        $url = if (Test-Path -LiteralPath $UrlFile) { (Get-Content -LiteralPath $UrlFile -TotalCount 1) } else { Get-EnvUrl }
        Write-Output 'local-mcp is running'
        Write-Output "  PID     $procId"
        if (Test-Healthz $url) {
            Write-Output "  URL     $url (answering /healthz)"
        } else {
            Write-Output "  URL     $url (NOT answering /healthz; see scripts\server.ps1 logs)"
        }
        Write-Output "  logs    $LogFile"
        exit 0
    }
    if (Test-Path -LiteralPath $PidFile) {
        Write-Output "local-mcp is stopped (stale PID file ${PidFile}: process $procId is gone)"
    } else {
        Write-Output 'local-mcp is stopped'
    }
    exit 3
}

function Invoke-Logs {
    $follow = [bool] $f
    $count = 50
    if ($Lines -match '^\d+$') { $count = [int] $Lines }
    elseif ($Lines -eq '--follow') { $follow = $true }
    elseif ($Lines) { Fail "logs takes [-f] [N], not '$Lines' (e.g. scripts\server.ps1 logs -f 100)" }
    if (-not (Test-Path -LiteralPath $LogFile)) { Fail "no log yet at $LogFile (scripts\server.ps1 start writes it)" }
    if ($follow) {
        Get-Content -LiteralPath $LogFile -Tail $count -Wait
    } else {
        Get-Content -LiteralPath $LogFile -Tail $count
    }
}

if ($Help) { $Command = 'help' }
if (@('start', 'stop', 'restart', 'status') -contains $Command -and ($Lines -or $f)) {
    Fail "$Command takes no arguments (configure local-mcp with environment variables, e.g. `$env:HTTP_PORT = 8001)"
}
switch ($Command) {
    'start' { Invoke-Start }
    'stop' { Invoke-Stop }
    'restart' { Invoke-Stop; Invoke-Start }
    'status' { Invoke-Status }
    'logs' { Invoke-Logs }
    { $_ -in 'help', '-h', '--help' } { Show-Usage }
    '' { [Console]::Error.WriteLine((Show-Usage)); exit 2 }
    default {
        [Console]::Error.WriteLine("${Prog}: error: unknown command $Command`n")
        [Console]::Error.WriteLine((Show-Usage))
        exit 2
    }
}
exit 0
