"""Frames between a subscription and a worker: the one-slot latest-frame hand-off and the frame
counters and latency percentiles a node reports on /diagnostics."""
from __future__ import annotations

import collections
import threading
import time

import numpy as np
from diagnostic_msgs.msg import KeyValue


class LatestFrame:
    """One-slot hand-off from a subscription to a worker: a newer frame replaces an unprocessed one."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item = None

    def put(self, item) -> bool:
        """Returns True when an unprocessed item was overwritten (a dropped frame)."""
        with self._cond:
            dropped = self._item is not None
            self._item = item
            self._cond.notify()
        return dropped

    def pending(self) -> bool:
        """Returns True when an unprocessed item waits."""
        return self._item is not None

    def take(self, timeout: float | None = None):
        """Returns the latest item (and empties the slot), or None after `timeout` seconds."""
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item


class FrameStats:
    """Counters and latency percentiles of a node's frames, for /diagnostics."""

    def __init__(self, window: int = 300):
        self.lock = threading.Lock()
        self.received = self.processed = self.dropped = self.stale = self.late = 0
        self.bad: collections.Counter = collections.Counter()
        self.latency_ms: collections.deque = collections.deque(maxlen=window)
        self.out_times: collections.deque = collections.deque(maxlen=window)
        self.last_input = 0.0

    def on_input(self):
        with self.lock:
            self.received += 1
            self.last_input = time.monotonic()

    def on_bad(self, reason: str):
        with self.lock:
            self.bad[reason] += 1

    def on_dropped(self):
        with self.lock:
            self.dropped += 1

    def on_output(self, source_stamp_s: float, deadline_ms: float = 0.0):
        """Counts a processed frame; latency is measured from the camera's header stamp."""
        now = time.time()
        latency = (now - source_stamp_s) * 1e3
        with self.lock:
            self.processed += 1
            self.latency_ms.append(latency)
            self.out_times.append(time.monotonic())
            if deadline_ms and latency > deadline_ms:
                self.late += 1

    def rate(self) -> float:
        """Returns outputs per second over the last few seconds (0 when idle for 2 s)."""
        with self.lock:
            times = [t for t in self.out_times if t > time.monotonic() - 5.0]
        if len(times) < 2 or time.monotonic() - times[-1] > 2.0:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def percentiles(self) -> tuple[float, float]:
        """Returns latency (p50, p99) in ms over the window, NaN before any output."""
        with self.lock:
            lat = np.array(self.latency_ms, dtype=np.float64)
        if lat.size == 0:
            return float("nan"), float("nan")
        return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))

    def seconds_since_input(self) -> float:
        """Returns the time since the last received frame (inf before the first)."""
        return time.monotonic() - self.last_input if self.last_input else float("inf")

    def stale_reason(self, timeout: float) -> str | None:
        """Returns why the input is stale (no frame for `timeout` seconds), or None."""
        idle = self.seconds_since_input()
        if idle <= timeout:
            return None
        return "no camera frames yet" if idle == float("inf") else f"no camera frames for {idle:.1f} s"

    def key_values(self) -> list[KeyValue]:
        """Returns the counters as diagnostic key/values."""
        p50, p99 = self.percentiles()
        rate = self.rate()
        with self.lock:
            kv = {"rate_hz": f"{rate:.2f}", "latency_p50_ms": f"{p50:.1f}", "latency_p99_ms": f"{p99:.1f}",
                  "frames_received": self.received, "frames_processed": self.processed,
                  "frames_dropped": self.dropped, "frames_stale": self.stale, "frames_late": self.late,
                  "frames_bad": sum(self.bad.values())}
            kv.update({f"bad_{k}": v for k, v in sorted(self.bad.items())})
        return [KeyValue(key=k, value=str(v)) for k, v in kv.items()]


class StageTimes:
    """Milliseconds per stage of a node's recent frames (where a frame's time goes), for /diagnostics."""

    def __init__(self, stages: tuple[str, ...], window: int = 300):
        self.lock = threading.Lock()
        self.ms = {s: collections.deque(maxlen=window) for s in stages}

    def add(self, **ms: float):
        with self.lock:
            for stage, value in ms.items():
                self.ms[stage].append(value)

    def key_values(self) -> list[KeyValue]:
        """Returns stage_<name>_p50_ms and _p90_ms of each stage with samples."""
        with self.lock:
            samples = {k: np.array(v, dtype=np.float64) for k, v in self.ms.items() if v}
        out = []
        for stage, a in samples.items():
            out += [KeyValue(key=f"stage_{stage}_p50_ms", value=f"{np.percentile(a, 50):.2f}"),
                    KeyValue(key=f"stage_{stage}_p90_ms", value=f"{np.percentile(a, 90):.2f}")]
        return out
