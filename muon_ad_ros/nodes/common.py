"""What every node shares: image QoS and validation, latest-frame hand-off, frame statistics,
/diagnostics, parameter declaration with validation, and the spin/shutdown loop."""
from __future__ import annotations

import collections
import os
import signal
import threading
import time
from typing import Any, Callable, Iterable

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_policy_name_from_kind)
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from sensor_msgs.msg import Image

from muon_ad_ros.params import Param

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR,
                          DiagnosticStatus.STALE)

# encoding -> (channels, numpy dtype); the whitelist every subscriber validates against.
ENCODINGS = {
    "rgb8": (3, np.uint8), "bgr8": (3, np.uint8), "rgba8": (4, np.uint8), "bgra8": (4, np.uint8),
    "mono8": (1, np.uint8), "mono16": (1, np.uint16), "16UC1": (1, np.uint16), "32FC1": (1, np.float32),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")


def image_qos(depth: int = 1) -> QoSProfile:
    """Returns the sensor-data QoS for images: best effort, volatile, keep the latest `depth`."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)


def reliable_qos(depth: int = 10) -> QoSProfile:
    """Returns the QoS for small state messages (detections, pruning state, markers)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def _describe_qos(profiles: Iterable[Any]) -> str:
    return "; ".join(f"{i.node_namespace.rstrip('/')}/{i.node_name}: {i.qos_profile.reliability.name}/"
                     f"{i.qos_profile.durability.name}" for i in profiles) or "none found"


def qos_event_callbacks(node: Node, topic: str, qos: QoSProfile):
    """Returns (subscription, publisher) event callbacks that log an incompatible-QoS event naming
    this side (node, QoS) and the nodes and QoS on the other side."""
    mine = f"{qos.reliability.name}/{qos.durability.name}"

    def report(kind: str, policy: str, attempt: int = 0):
        others = (node.get_publishers_info_by_topic(topic) if kind == "subscriber"
                  else node.get_subscriptions_info_by_topic(topic))
        if attempt < 5 and any(i.node_name.startswith("_NODE_NAME_UNKNOWN") for i in others):
            # DDS reports the event before the graph cache knows the remote node's name.
            timer = None

            def again():
                node.destroy_timer(timer)
                report(kind, policy, attempt + 1)
            timer = node.create_timer(0.2, again)
            return
        verb = "cannot receive from publishers" if kind == "subscriber" else "is not received by subscribers"
        hint = ("Images use sensor-data QoS (best effort): set the other side to match." if kind == "subscriber"
                else "In RViz set the image display's Reliability Policy to Best Effort.")
        node.get_logger().error(f"incompatible QoS on {topic}: this {kind} ({node.get_name()}, {mine}) {verb} "
                                f"[{_describe_qos(others)}]; offending policy {policy}. {hint}")

    return (SubscriptionEventCallbacks(incompatible_qos=lambda e: report(
                "subscriber", qos_policy_name_from_kind(e.last_policy_kind))),
            PublisherEventCallbacks(incompatible_qos=lambda e: report(
                "publisher", qos_policy_name_from_kind(e.last_policy_kind))))


class ImageError(ValueError):
    """A malformed image; `reason` is the short key it is counted under in diagnostics."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def image_view(msg: Image, allowed: Iterable[str] = COLOR_ENCODINGS, max_dim: int = 4096) -> np.ndarray:
    """Returns a zero-copy (H, W[, C]) view of msg.data after checking every field that could make
    the view wrong; raises ImageError otherwise."""
    if msg.encoding not in allowed or msg.encoding not in ENCODINGS:
        raise ImageError("encoding", f"{msg.encoding!r} not in {sorted(allowed)}")
    h, w = msg.height, msg.width
    if not (0 < h <= max_dim and 0 < w <= max_dim):
        raise ImageError("size", f"{w}x{h} outside 1..{max_dim}")
    channels, dtype = ENCODINGS[msg.encoding]
    itemsize = np.dtype(dtype).itemsize
    row = w * channels * itemsize
    if msg.step < row:
        raise ImageError("step", f"step {msg.step} < width*channels*bytes {row}")
    if len(msg.data) != h * msg.step:
        raise ImageError("data_length", f"len(data) {len(msg.data)} != height*step {h * msg.step}")
    if itemsize > 1 and msg.step % itemsize:
        raise ImageError("step", f"step {msg.step} not a multiple of {itemsize}")
    if itemsize > 1 and msg.is_bigendian:
        raise ImageError("endianness", "big-endian data on a little-endian host")
    # Rows may be padded (step > row): slice them off; the last axis stays contiguous, so
    # viewing it as a wider dtype needs no copy.
    view = np.frombuffer(msg.data, np.uint8).reshape(h, msg.step)[:, :row]
    if itemsize > 1:
        view = view.view(dtype)
    return view.reshape(h, w, channels) if channels > 1 else view.reshape(h, w)


def fill_image(msg: Image, array: np.ndarray, encoding: str, header) -> Image:
    """Returns `msg` filled from a contiguous (H, W[, C]) array; one tobytes() copy, never element-wise."""
    msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    array = np.ascontiguousarray(array)
    msg.step = int(array.strides[0])
    msg.data = array.tobytes()
    return msg


def stamp_seconds(stamp) -> float:
    """Returns a builtin_interfaces/Time as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


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


def resident_mb() -> float:
    """Returns this process's resident set size in MiB (from /proc, no extra dependency)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def kv(**items) -> list[KeyValue]:
    """Returns diagnostic key/values from keyword arguments."""
    return [KeyValue(key=k, value=str(v)) for k, v in items.items()]


class Diagnostics:
    """Publishes the node's latest statuses on /diagnostics every `period` seconds."""

    def __init__(self, node: Node, hardware_id: str, period: float = 1.0):
        self.node = node
        self.hardware_id = hardware_id
        self._statuses: dict[str, DiagnosticStatus] = {}
        self._lock = threading.Lock()
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._providers: list[Callable[[], None]] = []
        node.create_timer(period, self.publish)

    def add_provider(self, fn: Callable[[], None]):
        """Registers a function called before each publication to refresh statuses."""
        self._providers.append(fn)

    def status(self, name: str, level: int, message: str, values: list[KeyValue] | None = None):
        """Sets the status `<node name>: <name>` published from now on."""
        full = f"{self.node.get_name()}: {name}"
        st = DiagnosticStatus(level=level, name=full, message=message, hardware_id=self.hardware_id,
                              values=list(values or []))
        with self._lock:
            self._statuses[full] = st

    def publish(self):
        for fn in self._providers:
            try:
                fn()
            except Exception as exc:  # a broken provider must not stop diagnostics
                self.status("diagnostics", ERROR, f"provider failed: {exc}")
        arr = DiagnosticArray()
        arr.header.stamp = self.node.get_clock().now().to_msg()
        with self._lock:
            arr.status = list(self._statuses.values())
        for st in arr.status:
            if not any(v.key == "resident_mb" for v in st.values):
                st.values.append(KeyValue(key="resident_mb", value=f"{resident_mb():.1f}"))
        self._pub.publish(arr)


def _descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(name=p.name, description=p.description, read_only=p.read_only)
    if p.choices:
        d.additional_constraints = f"one of {list(p.choices)}"
    if p.type is float and (p.min is not None or p.max is not None):
        d.floating_point_range = [FloatingPointRange(from_value=float(p.min if p.min is not None else -1e308),
                                                     to_value=float(p.max if p.max is not None else 1e308))]
    if p.type is int and (p.min is not None or p.max is not None):
        d.integer_range = [IntegerRange(from_value=int(p.min if p.min is not None else -2**62),
                                        to_value=int(p.max if p.max is not None else 2**62), step=0)]
    return d


def declare_params(node: Node, params: Iterable[Param], check: Callable[[dict], str | None] = lambda v: None,
                   on_change: Callable[[str, Any], None] | None = None) -> dict:
    """Returns a dict of current values kept up to date; every set is validated (type, range,
    choices, cross-check) and rejected with a reason, the old value kept."""
    params = tuple(params)
    by_name = {p.name: p for p in params}
    values: dict = {}
    for p in params:
        default = list(p.default) if p.type is list else p.default
        if p.type is list and not default:
            # An empty list gives ROS no type; declare it as a string array explicitly.
            from rclpy.parameter import Parameter
            value = node.declare_parameter(p.name, Parameter.Type.STRING_ARRAY, _descriptor(p)).value or []
        else:
            value = node.declare_parameter(p.name, default, _descriptor(p)).value
        if p.type is list:
            value = list(value or [])    # a params file's `[]` arrives as None (no type)
        reason = p.validate(value)
        if reason:
            raise ValueError(f"{node.get_name()}: startup value rejected: {reason}")
        values[p.name] = value
    reason = check(dict(values))
    if reason:
        raise ValueError(f"{node.get_name()}: startup parameters inconsistent: {reason}")

    def on_set(changes):
        proposed = dict(values)
        for c in changes:
            p = by_name.get(c.name)
            if p is None:
                continue
            v = list(c.value or []) if p.type is list else c.value
            reason = p.validate(v)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            proposed[c.name] = v
        reason = check(proposed)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        changed = [(k, proposed[k]) for k in proposed if proposed[k] != values.get(k)]
        values.update(proposed)
        if on_change:
            for k, v in changed:
                on_change(k, v)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
    return values


def make_executor(kind: str | None = None, context=None):
    """Returns the executor the nodes spin in: a SingleThreadedExecutor, or with `MUON_AD_EXECUTOR=multi`
    the two-thread MultiThreadedExecutor. Inference runs in its own thread either way; the executor only
    hands over frames, timers and services. Measured in the graph benchmark (60 s at 30 Hz, three runs
    each): single 0.1 / 0.2 / 0.4 % missed frames, multi 1.8 / 5.6 / 8.0 % (its thread pool's hand-off took
    ~15 % of the style node's busy samples). Under overload (SCHED_FIFO inference never idle) single
    showed ~1 s output stalls in the previous session's 8 s probes (above 34 Hz) where multi did not; the
    latest probes (fresh clone, this session's models) sustained 50.6 Hz and showed none up to 60 Hz.
    The first-contact stalls once blamed on single also happen with multi (py-spy: nodes idle, DDS
    discovery pending). (rclpy's EventsExecutor: its timers did not fire in this rclpy.)"""
    kind = kind or os.environ.get("MUON_AD_EXECUTOR", "single")
    if kind == "single":
        return SingleThreadedExecutor(context=context)
    if kind == "multi":
        return MultiThreadedExecutor(num_threads=2, context=context)
    raise ValueError(f"MUON_AD_EXECUTOR must be 'single' or 'multi', got {kind!r}")


def run_node(node_class, args=None, **kwargs) -> int:
    """Returns the exit code after initialising rclpy, spinning `node_class` and shutting down."""
    rclpy.init(args=args)
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    node = None
    try:
        node = node_class(**kwargs)
        executor = make_executor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
