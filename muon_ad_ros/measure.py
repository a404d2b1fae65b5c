"""Measurement helpers shared by the benchmarks, the demo, the soak and the evaluation: the machine a figure was
measured on, percentiles, and an absolute-schedule pacer."""
from __future__ import annotations

import os
import platform
import time

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
