"""Where a result came from: the git commit of the source tree and whether it had changes (bundles'
training records and exports, benchmark reports)."""
from __future__ import annotations

import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def git_commit(cwd: str | Path | None = None) -> str | None:
    """Returns the checkout's commit, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or PACKAGE, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def git_dirty(path: str | Path = PACKAGE) -> bool | None:
    """Returns whether Python files under `path` differ from the commit (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=path, capture_output=True,
                             text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return any(line[3:].endswith(".py") for line in out.splitlines())
