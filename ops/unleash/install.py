"""Installing the Unleash server: `npm ci` in this package's directory, on first use.

`ensure_installed` runs `npm ci` (one process at a time, under a lock file) when
`node_modules/unleash-server` is missing, or when `package-lock.json` is not the one it was
installed from: a stamp (`node_modules/.dualrun-lock.sha256`, the lockfile's SHA-256) is
written after each successful install and compared on every use, so a lockfile change
reinstalls. npm's output goes to a log file; a failure raises `UnleashInstallFailed` naming
the exit status and that file (the local stack then falls back to the bootstrap file).
`directory` is this package's by default; a test installs a copy elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import structlog

from ops.processes import log_tail
from renewals.errors import DualrunError
from renewals.files import file_lock
from renewals.logs import redact_text

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
MIN_NODE = 20
NPM_CI = ("ci", "--no-audit", "--no-fund", "--loglevel=error")
STAMP = ".dualrun-lock.sha256"


class UnleashNotInstalled(DualrunError):
    """`unleash-server` is not installed and cannot be (`why`: node or npm not found)."""

    def __init__(self, directory: Path = HERE, why: str = "not installed yet") -> None:
        super().__init__(
            f"unleash: {_package(directory).parent} is missing ({why}): `npm ci` in {directory} "
            f"installs it (Node {MIN_NODE}+ with npm)"
        )
        self.why = why


class UnleashInstallFailed(DualrunError):
    """`npm ci` failed (or timed out); `problem` says how, `log_file` holds npm's output."""

    def __init__(self, directory: Path, problem: str, log_file: Path) -> None:
        super().__init__(f"unleash: `npm ci` in {directory} {problem} (npm's output: {log_file})")
        self.directory = directory
        self.problem = problem
        self.log_file = log_file

    def first_line(self) -> str:
        """npm's first line of output (its error code, usually), secrets masked."""
        lines = [row.strip() for row in log_tail(self.log_file, 200).splitlines() if row.strip()]
        return redact_text(lines[0])[:200] if lines else ""


def _package(directory: Path) -> Path:
    return directory / "node_modules" / "unleash-server" / "package.json"


def lock_digest(directory: Path = HERE) -> str:
    """SHA-256 of `package-lock.json` (what an install is stamped with)."""
    return hashlib.sha256((directory / "package-lock.json").read_bytes()).hexdigest()


def installed(directory: Path = HERE) -> bool:
    """`unleash-server` is installed from the current `package-lock.json` (stamp matches)."""
    stamp = directory / "node_modules" / STAMP
    try:
        return _package(directory).exists() and stamp.read_text().strip() == lock_digest(directory)
    except OSError:
        return False


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise UnleashNotInstalled(why="node not found")
    return found


def node_problem() -> str | None:
    """Why Node cannot run the server here (None: `node` on PATH is version MIN_NODE or later)."""
    found = shutil.which("node")
    if found is None:
        return f"Node >= {MIN_NODE} not found"
    try:
        version = subprocess.run(
            [found, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError):
        return f"Node >= {MIN_NODE} not found ({found} does not tell its version)"
    if major < MIN_NODE:
        return f"Node >= {MIN_NODE} not found ({found} is {version})"
    return None


def ensure_installed(
    directory: Path = HERE, *, log_file: Path | None = None, timeout_s: float = 600.0
) -> str:
    """`npm ci` in `directory` unless installed from its current lockfile; the version.

    Raises UnleashNotInstalled without npm, UnleashInstallFailed when `npm ci` fails."""
    log_file = log_file or directory / "npm-ci.log"
    with file_lock(directory / ".npm-ci.lock"):
        if not installed(directory):
            npm = shutil.which("npm")
            if npm is None:
                raise UnleashNotInstalled(directory, "npm not found")
            _npm_ci(npm, directory, log_file, timeout_s)
    return installed_version(directory)


def _npm_ci(npm: str, directory: Path, log_file: Path, timeout_s: float) -> None:
    digest = lock_digest(directory)
    log.debug("unleash.npm_ci", directory=str(directory), log_file=str(log_file))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as out:
        try:
            code = subprocess.run(
                [npm, *NPM_CI],
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            problem = f"did not finish in {timeout_s:.0f} s"
        except OSError as exc:
            problem = f"could not run ({type(exc).__name__}: {exc.strerror or exc})"
        else:
            problem = "" if code == 0 else f"failed (exit {code})"
    if problem:  # the caller says so (the stack, once): no log line of its own here
        raise UnleashInstallFailed(directory, problem, log_file)
    (directory / "node_modules" / STAMP).write_text(digest + "\n")


def installed_version(directory: Path = HERE) -> str:
    package = _package(directory)
    if not package.exists():
        raise UnleashNotInstalled(directory)
    return str(json.loads(package.read_text())["version"])
