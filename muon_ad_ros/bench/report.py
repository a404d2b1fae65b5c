"""What every benchmark report shares: the machine it ran on, percentiles, and the JSON + Markdown pair."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np


def machine(*libraries: str) -> dict:
    """Returns what the figures were measured on: CPU, cores, load, Python, kernel and the versions of the
    named libraries (those not installed are left out)."""
    import importlib
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu or platform.processor(), "cores": os.cpu_count(), "load_average": list(os.getloadavg()),
            "python": platform.python_version(), "kernel": platform.release(), "machine": platform.machine()}
    for name in libraries:
        try:
            info[name] = importlib.import_module(name).__version__
        except ImportError:
            pass
    return info


def percentiles(values, qs=(50, 90, 99)) -> dict:
    """Returns {'p50': .., 'p90': .., 'p99': .., 'max': .., 'n': ..} of a list (NaN when empty)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {**{f"p{q}": float("nan") for q in qs}, "max": float("nan"), "n": 0}
    return {**{f"p{q}": round(float(np.percentile(arr, q)), 2) for q in qs}, "max": round(float(arr.max()), 2),
            "n": int(arr.size)}


def paced(rate: float, seconds: float):
    """Yields 0, 1, 2, ... at `rate` per second for `seconds`, on an absolute schedule (no drift)."""
    t0 = time.monotonic()
    n = 0
    while (now := time.monotonic()) < t0 + seconds:
        target = t0 + n / rate
        if target > now:
            time.sleep(target - now)
        yield n
        n += 1


def git_commit(cwd: str | Path | None = None) -> str:
    """Returns the checkout's commit (with '+dirty' when it has changes), or '' outside a git checkout."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return rev + ("+dirty" if rev and dirty else "")


def write_report(out_dir: Path, name: str, result: dict, markdown: str) -> tuple[Path, Path]:
    """Writes <name>.json and <name>.md into out_dir and prints their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"commit": git_commit(), **result}
    js, md = out_dir / f"{name}.json", out_dir / f"{name}.md"
    js.write_text(json.dumps(result, indent=2, default=float))
    md.write_text(markdown)
    print(f"wrote {js} and {md}")
    return js, md
