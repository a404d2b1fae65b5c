"""What every camera source shares: the frame it returns, its state and counters, reconnect
backoff, pacing to a frame rate, and the mapping of source timestamps to ROS time."""
from __future__ import annotations

import time
from dataclasses import dataclass
import numpy as np

# Source states, as reported in diagnostics.
STARTING, STREAMING, RECONNECTING, ENDED = "starting", "streaming", "reconnecting", "ended"


class SourceError(RuntimeError):
    """A camera source cannot be opened or read; the message names the source and the cause."""


@dataclass
class Frame:
    """One captured frame: rgb8 color, optional depth aligned to it, and when it was exposed."""

    color: np.ndarray                  # (H, W, 3) uint8, RGB
    stamp_ns: int                      # ROS time (host clock, ns since the Unix epoch)
    source_ms: float                   # the source's own timestamp in ms (hardware clock, media time, ...)
    number: int                        # the source's frame counter
    depth: np.ndarray | None = None    # (H, W) uint16, millimetres, 0 = no data


class Backoff:
    """Reconnect delays that double from `first` to `limit` seconds and reset after a success."""

    def __init__(self, first: float = 0.5, limit: float = 8.0):
        self.first, self.limit = first, limit
        self.delay = first
        self.next_try = 0.0

    def failed(self) -> float:
        """Returns the delay before the next attempt, and schedules it."""
        delay = self.delay
        self.next_try = time.monotonic() + delay
        self.delay = min(self.limit, self.delay * 2)
        return delay

    def reset(self):
        self.delay = self.first
        self.next_try = 0.0

    def wait(self, timeout: float) -> bool:
        """Returns True when an attempt is due, after sleeping at most `timeout` seconds for it."""
        remaining = self.next_try - time.monotonic()
        if remaining > 0:
            time.sleep(min(remaining, timeout))
        return time.monotonic() >= self.next_try


class Pacer:
    """Sleeps so that frames leave at `fps` (0 = no pacing), or at the spacing of their own
    timestamps (`wait(source_ms)`, for recordings)."""

    def __init__(self, fps: float = 0.0):
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.due = 0.0
        self.anchor: tuple[float, float] | None = None   # (monotonic s, source ms) of the schedule's start
        self.last = (0.0, float("inf"))                  # (due, source ms) of the previous frame
        self.gap = 0.0

    def wait(self, source_ms: float | None = None):
        now = time.monotonic()
        if source_ms is not None:
            if self.anchor is None:
                self.anchor = (now, source_ms)
            elif source_ms < self.last[1]:   # the source clock went back (a loop): one more frame gap
                self.anchor = (self.last[0] + self.gap, source_ms)
            due = self.anchor[0] + (source_ms - self.anchor[1]) / 1000.0
            if due < now - 0.1:              # fell behind (a slow reader): restart instead of bursting
                self.anchor, due = (now, source_ms), now
            if self.anchor and source_ms > self.last[1]:
                self.gap = (source_ms - self.last[1]) / 1000.0
            self.last = (due, source_ms)
            if due > now:
                time.sleep(due - now)
            return
        if not self.period:
            return
        if self.due > now:
            time.sleep(self.due - now)
            now = self.due
        # When we fell behind by more than a period, restart the schedule instead of bursting.
        self.due = self.due + self.period if self.due + self.period > now else now + self.period


class StampMapper:
    """Maps source timestamps (ms) to ROS time (ns, host clock).

    Host-clock domains (RealSense global_time/system_time) are used as they are. Other clocks
    (a device's hardware clock, a file's media time) get an offset to the host clock, so frame
    spacing stays the source's own (realsense-ros does the same with its time base). The offset
    is the smallest host-minus-source difference seen, i.e. that of the frame delivered with the
    least delay, so a stamp is never later than its frame's arrival. It is taken anew when the
    source clock goes backwards (a recording looped, a device reset) or drifts more than
    `max_skew_s` from the host clock (a recording paused or played slower than it was made)."""

    def __init__(self, max_skew_s: float = 1.0):
        self.max_skew_ns = int(max_skew_s * 1e9)
        self.offset_ns: int | None = None
        self.last_ms = float("-inf")
        self.reanchors = 0

    def __call__(self, source_ms: float, host_clock: bool = False) -> int:
        """Returns the ROS time in ns of a frame stamped `source_ms` by the source."""
        if host_clock:
            return int(round(source_ms * 1e6))
        now = time.time_ns()
        source_ns = int(round(source_ms * 1e6))
        if (self.offset_ns is None or source_ms < self.last_ms
                or abs(source_ns + self.offset_ns - now) > self.max_skew_ns):
            if self.offset_ns is not None:
                self.reanchors += 1
            self.offset_ns = now - source_ns
        self.offset_ns = min(self.offset_ns, now - source_ns)
        self.last_ms = source_ms
        return source_ns + self.offset_ns

    def reset(self):
        self.offset_ns = None
        self.last_ms = float("-inf")


class ReopeningSource:
    """What both camera sources do on failure and restart; subclasses define close() and keep
    `state`, `last_error` and `backoff`."""

    def close(self):
        raise NotImplementedError

    def _open(self):
        raise NotImplementedError

    def _opened(self, timeout: float) -> bool:
        """Returns True when the source is open, opening it once the backoff allows."""
        if not self.backoff.wait(timeout):
            return False
        try:
            self._open()
        except SourceError as exc:
            self._failed(str(exc))
            return False
        return True

    def _failed(self, reason: str):
        self.close()
        self.state, self.last_error = RECONNECTING, reason
        self.backoff.failed()

    def restart(self):
        """Reopens the source on the next read (after ENDED, or to apply new settings)."""
        self.close()
        self.state = STARTING
        self.backoff.reset()
