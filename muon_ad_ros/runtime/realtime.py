"""Real-time scheduling for the calling thread (SCHED_FIFO with a clear fallback)."""
from __future__ import annotations

import os
import resource
import threading
from dataclasses import dataclass

_POLICY_NAMES = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR",
                 getattr(os, "SCHED_BATCH", -1): "SCHED_BATCH", getattr(os, "SCHED_IDLE", -2): "SCHED_IDLE"}


@dataclass
class RealtimeStatus:
    """What the OS actually granted the thread."""

    policy_name: str
    priority: int
    ok: bool                 # True when the requested policy is in effect
    reason: str              # why not, or what was granted
    thread_id: int           # native id (sched_getscheduler(thread_id) checks it from outside)
    cpu_affinity: tuple[int, ...] = ()


def policy_name(policy: int) -> str:
    """Returns the name of a scheduling policy constant."""
    return _POLICY_NAMES.get(policy, str(policy))


def apply_realtime(priority: int, cpu_affinity: tuple[int, ...] = (), nice: int = 0) -> RealtimeStatus:
    """Returns the status after asking SCHED_FIFO at `priority` (0 = normal scheduling with `nice`)
    for the calling thread only; on refusal the thread keeps SCHED_OTHER and the reason says why."""
    tid = threading.get_native_id()
    affinity: tuple[int, ...] = ()
    notes = []
    if cpu_affinity:
        try:
            os.sched_setaffinity(0, set(cpu_affinity))
            affinity = tuple(sorted(os.sched_getaffinity(0)))
        except (OSError, ValueError) as exc:
            notes.append(f"cpu_affinity {list(cpu_affinity)} refused: {exc}")
    if priority <= 0:
        if nice:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            except OSError as exc:
                notes.append(f"nice {nice} refused: {exc}")
        notes.insert(0, "normal scheduling requested")
        return RealtimeStatus(policy_name(os.sched_getscheduler(0)), 0, True, "; ".join(notes), tid, affinity)
    lo, hi = os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO)
    if not lo <= priority <= hi:
        raise ValueError(f"SCHED_FIFO priority {priority} outside [{lo}, {hi}]")
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError as exc:
        soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
        notes.insert(0, f"SCHED_FIFO {priority} refused ({exc.strerror}; RLIMIT_RTPRIO={soft}); "
                        "running SCHED_OTHER. Grant with limits.conf rtprio or CAP_SYS_NICE")
        return RealtimeStatus(policy_name(os.sched_getscheduler(0)), 0, False, "; ".join(notes), tid, affinity)
    granted = os.sched_getparam(0).sched_priority
    notes.insert(0, f"SCHED_FIFO priority {granted} in effect")
    return RealtimeStatus(policy_name(os.sched_getscheduler(0)), granted, True, "; ".join(notes), tid, affinity)
