"""controller node: the graph's parameter server. Sets retention / resolution on the style node by
hand, in closed loop on the stylized frame rate and latency, or from RealSense depth, and says on
/diagnostics what it decided and why."""
from __future__ import annotations

import collections
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterEvent
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import parameter_value_to_python
from rclpy.qos import qos_profile_parameter_events
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from muon_ad_ros.model.bundle import level_for
from muon_ad_ros.msg import PruningState
from muon_ad_ros.nodes import declare, diagnostics, frames, images, qos, spin
from muon_ad_ros.nodes.diagnostics import OK, WARN
from muon_ad_ros.nodes.links import LinkMonitor
from muon_ad_ros.params import controller as controller_params

DETECTION_RATE_START = 10.0   # first rate_limit the loop gives detection at its floor when detection_rate_max is 0


def depth_retention(depth_m: np.ndarray, near: float, far: float, r_min: float, r_max: float) -> tuple[float, float]:
    """Returns (retention, nearest content distance in m): the 5th percentile of valid depth mapped
    linearly from r_max at `near` to r_min at `far` (METHOD.md section 4, distance-aware pruning,
    applied per frame because the exported student takes one retention per frame)."""
    valid = depth_m[(depth_m > 0) & np.isfinite(depth_m)]
    if valid.size == 0:
        return r_max, float("nan")
    nearest = float(np.percentile(valid, 5))
    t = min(1.0, max(0.0, (nearest - near) / (far - near)))
    return r_max - t * (r_max - r_min), nearest


def stream_window(arrivals, now: float, horizon: float) -> tuple[float, float, int, float]:
    """Returns (fps of the slowest stream, latency p50 ms, samples, fps of all streams together) of the
    (receipt time, latency ms, camera frame_id) arrivals of the last ``horizon`` seconds. With two cameras
    into the style node (the launch gives both the same rate) each stream is timed on its own: their sum
    would hide one that falls behind. A stream with fewer than two frames in the window has no rate and is
    left out (a silent camera is the link monitor's to report); with no timed stream the rates are 0."""
    recent = [a for a in arrivals if a[0] > now - horizon]
    streams: dict = {}
    for t, _, frame in recent:
        streams.setdefault(frame, []).append(t)
    rates = [(len(ts) - 1) / max(1e-6, ts[-1] - ts[0]) for ts in streams.values() if len(ts) >= 2]
    p50 = float(np.median([a[1] for a in recent])) if len(recent) >= 2 else float("nan")
    return (min(rates) if rates else 0.0), p50, len(recent), sum(rates)


def next_level(levels, retention: float, up: bool, bound: float):
    """Returns the model level next above (`up`) or below the one `retention` runs at, within `bound`
    (retention_max / retention_min), or None. Retentions between two levels run the lower one, so a
    fixed step (1.0 -> 0.9 -> 0.8) spends periods on requests that change nothing."""
    current = level_for(levels, retention)
    if up:
        above = [lv for lv in levels if current + 1e-6 < lv <= bound + 1e-6]
        return min(above) if above else None
    below = [lv for lv in levels if bound - 1e-6 <= lv < current - 1e-6]
    return max(below) if below else None


class LevelCosts:
    """What each retention level cost the style node lately: the inference_ms of its PruningState
    messages (an exponential average per level, with when it was last seen). A level whose recent cost
    times the camera frame rate exceeds the style node's time is not worth a raise: it was seen
    dropping frames. Costs are taken at whatever resolution_scale ran; the loop raises retention only once
    the resolution is back at 1.0, where the levels above the lowest were measured."""

    MEMORY_S = 30.0   # costs older than this are forgotten: the load on the machine changes

    def __init__(self):
        self.ms: dict[float, tuple[float, float]] = {}

    def add(self, level: float, ms: float, now: float) -> None:
        key = round(float(level), 4)
        old = self.ms.get(key)
        self.ms[key] = (ms if old is None or now - old[1] > self.MEMORY_S else 0.8 * old[0] + 0.2 * ms, now)

    def recent(self, now: float) -> dict[float, float]:
        """Returns {level: ms} of the levels seen within MEMORY_S."""
        return {lv: ms for lv, (ms, t) in self.ms.items() if now - t <= self.MEMORY_S}

    def summary(self, now: float) -> str:
        """Returns 'level: ms' of every level remembered, e.g. '0.40: 9.8, 0.70: 17.2' (empty when none)."""
        return ", ".join(f"{lv:.2f}: {ms:.1f}" for lv, ms in sorted(self.recent(now).items()))

    def load(self, level: float, frames_per_s: float, now: float) -> float:
        """Returns the fraction of the style node's time `level` would take at this input rate (NaN when its
        cost is unknown or forgotten)."""
        return frames_per_s * self.recent(now).get(round(float(level), 4), float("nan")) / 1e3


class RaiseGate:
    """When the target_fps loop may raise quality: after `need` consecutive control periods with headroom.

    A raise undone (a degrade) within `need` periods doubles `need`, up to 32; a raise that holds until the
    next one halves it back towards `base`. Headroom measured at a level the style node only just sustains
    (no drops there) does not show that the level above is sustainable: raising after every such period
    made the loop cycle through a level it could not hold (two 30 Hz cameras: a burst of dropped frames
    every 2-3 s)."""

    def __init__(self, base: int):
        self.base = self.need = int(base)
        self.calm = 0                   # consecutive periods with headroom
        self.since_raise = None         # periods since the last raise (None: none, or undone)

    def _tick(self):
        if self.since_raise is not None:
            self.since_raise += 1

    def degraded(self) -> None:
        self._tick()
        if self.since_raise is not None and self.since_raise <= self.need:
            self.need = min(32, 2 * self.need)
        self.calm, self.since_raise = 0, None

    def headroom(self) -> bool:
        """Counts a period with headroom; True when quality is to be raised now."""
        self._tick()
        self.calm += 1
        if self.calm < self.need:
            return False
        if self.since_raise is not None:
            self.need = max(self.base, self.need // 2)
        self.calm, self.since_raise = 0, 0
        return True

    def held(self) -> None:
        self._tick()
        self.calm = 0


class ControllerNode(Node):
    def __init__(self):
        super().__init__("controller")
        self.values = declare.declare_params(self, controller_params.PARAMS, controller_params.check,
                                            self._on_change)
        self.diag = diagnostics.Diagnostics(self)
        ns = self.get_namespace().rstrip("/")
        self.style_fqn = f"{ns}/{self.values['style_node']}"
        self.style_client = self.create_client(SetParameters, f"{self.style_fqn}/set_parameters")
        self.style_getter = self.create_client(GetParameters, f"{self.style_fqn}/get_parameters")
        det = self.values["detection_node"]
        self.det_fqn = f"{ns}/{det}" if det else ""
        self.det_client = self.create_client(SetParameters, f"{self.det_fqn}/set_parameters") if det else None
        # What is in effect on the style node, from its parameter events and a read-back at (re)connection:
        # someone else (`ros2 param set`, a params file) may set it.
        self.style_actual: dict = {}
        self.overrides = 0              # style node changes this controller did not make
        self.last_override = ""
        self.in_flight: dict = {}       # style values asked for, not yet answered
        self.refused: dict = {}         # style values the style node refused: name -> (value, its reason)
        self._reading = 0.0             # when the read-back was sent (0 = none pending)
        self.create_subscription(ParameterEvent, "/parameter_events", self._on_parameter_event,
                                 qos_profile_parameter_events)
        self.arrivals = collections.deque(maxlen=1000)     # (receipt monotonic, latency ms, camera frame_id)
        # no stale_timeout of its own: a peer listed but unmatched for three control periods (2 s at least)
        self.links = LinkMonitor(self, self.diag, lambda: max(2.0, 3 * self.values["period"]))
        self.links.subscription(PruningState, "stylized/pruning_state", self._on_state, qos.reliable_qos())
        self.depth_link = None          # subscribed in depth_lod mode only (_follow_mode)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.style_status = f"{diagnostics.status_prefix(self.style_fqn)}: style"
        self.style_counts = None        # (received, dropped) cumulative, from the style node's diagnostics
        self.drop_ratio = (float("nan"), 0.0)   # (dropped / received between two reports, when)
        self.depth = None
        self.depth_stats = frames.FrameStats()
        self.retention, self.scale = self.values["retention"], self.values["resolution_scale"]
        self.detection_rate = None      # None: the loop has not limited detection
        self.gate = RaiseGate(self.values["restore_periods"])
        self.levels: tuple = ()         # the style model's retention levels (PruningState.retention_levels)
        self.costs = LevelCosts()
        self.pushed: dict = {}
        if self.values["mode"] != "manual":
            self._adopt_style_values()
        self._follow_mode()
        self.decision, self.level = "starting", OK
        self.timer = self.create_timer(self.values["period"], self._control)
        self.diag.add_provider(self._report)

    def _on_change(self, name: str, value):
        if name == "period":
            self.timer.cancel()
            self.timer = self.create_timer(value, self._control)
        if name == "mode" and value != "manual":
            self._adopt_style_values()
        if name == "mode":
            self._follow_mode()
        if name == "restore_periods":
            self.gate = RaiseGate(value)
        if self.values["mode"] == "manual" and name in ("mode", "retention", "resolution_scale"):
            self.retention, self.scale = self.values["retention"], self.values["resolution_scale"]

    def _follow_mode(self):
        """Subscribes to depth in depth_lod mode only: a camera node aligns depth to color only while
        someone takes it, and that alignment is the largest share of its CPU time."""
        wanted = self.values["mode"] == "depth_lod"
        if wanted and self.depth_link is None:
            self.depth_link = self.links.subscription(Image, "depth", self._on_depth, qos.image_qos())
        elif not wanted and self.depth_link is not None:
            self.links.remove(self.depth_link)
            self.depth_link, self.depth = None, None

    def _on_state(self, msg: PruningState):
        latency = (time.time() - images.stamp_seconds(msg.header.stamp)) * 1e3
        now = time.monotonic()
        self.arrivals.append((now, latency, msg.header.frame_id))
        self.levels = tuple(msg.retention_levels)
        self.costs.add(msg.retention_level, msg.inference_ms, now)

    def _on_depth(self, msg: Image):
        self.depth_stats.on_input()
        try:
            self.depth = (images.image_view(msg, images.DEPTH_ENCODINGS, 8192), msg.encoding)
        except images.ImageError as exc:
            self.depth_stats.on_bad(exc.reason)
            self.get_logger().warning(f"depth frame rejected: {exc}", throttle_duration_sec=5.0)

    def _on_diagnostics(self, msg: DiagnosticArray):
        for st in msg.status:
            if st.name != self.style_status:
                continue
            kv = {v.key: v.value for v in st.values}
            try:
                counts = (int(kv["frames_received"]), int(kv["frames_dropped"]))
            except (KeyError, ValueError):
                return
            prev, self.style_counts = self.style_counts, counts
            if prev is not None and counts[0] > prev[0]:
                self.drop_ratio = ((counts[1] - prev[1]) / (counts[0] - prev[0]), time.monotonic())

    # -- what is in effect on the style and detection nodes ------------------------------------
    FOLLOWED = ("retention", "resolution_scale")

    def _on_parameter_event(self, msg: ParameterEvent):
        if msg.node == self.style_fqn:
            for how, params in (("declared", msg.new_parameters), ("changed", msg.changed_parameters)):
                for p in params:
                    if p.name in self.FOLLOWED:
                        self._style_value(p.name, parameter_value_to_python(p.value), how)
                    elif p.name in ("backend", "model_dir"):
                        self.refused.clear()    # another model or backend may take what this one refused
        elif self.det_fqn and msg.node == self.det_fqn:
            for p in list(msg.new_parameters) + list(msg.changed_parameters):
                if p.name == "rate_limit":
                    self.pushed["rate_limit"] = float(parameter_value_to_python(p.value))

    def _style_value(self, name: str, value, how: str):
        """Records a value in effect on the style node (`how`: read back, declared at its start, or
        changed). A change this controller did not ask for is an override: manual mode restores its own
        setting on the next period, the loop modes continue from it."""
        value = round(float(value), 4)
        self.style_actual[name] = value
        ours = self.in_flight.get(name) == value or self.pushed.get(name) == value
        self.pushed[name] = value       # what _push compares with: the style node's real value
        if ours:
            return
        if how == "changed":
            self.overrides += 1
            self.last_override = f"{name} {value:g} set on {self.style_fqn} by another node"
            self.get_logger().info(f"{self.last_override}; "
                                   f"{'restoring the manual setting' if self.values['mode'] == 'manual' else 'the loop continues from it'}")
        if self.values["mode"] != "manual":
            self._adopt_style_values()

    def _adopt_style_values(self):
        """Starts the loop from what is in effect on the style node (within the loop's bounds), or
        from retention_max and full resolution while that is unknown."""
        v = self.values
        self.retention = min(v["retention_max"], max(v["retention_min"],
                                                     self.style_actual.get("retention", v["retention_max"])))
        self.scale = min(1.0, max(v["resolution_min"] if v["mode"] == "target_fps" else 0.25,
                                  self.style_actual.get("resolution_scale", 1.0)))

    def _read_style(self):
        """Reads the style node's values once its service is up (and again after it restarts)."""
        if not self.style_getter.service_is_ready():
            self.style_actual.clear()     # gone: read again when it is back
            self.refused.clear()
            return
        if all(k in self.style_actual for k in self.FOLLOWED) or time.monotonic() - self._reading < 5.0:
            return
        self._reading = time.monotonic()
        future = self.style_getter.call_async(GetParameters.Request(names=list(self.FOLLOWED)))

        def done(f):
            self._reading = 0.0
            res = f.result()
            if res is None or len(res.values) != len(self.FOLLOWED):
                return
            for name, v in zip(self.FOLLOWED, res.values):
                self._style_value(name, parameter_value_to_python(v), "read")
        future.add_done_callback(done)

    def _drops(self) -> float:
        """Returns the fraction of camera frames the style node dropped recently (NaN when unknown)."""
        ratio, when = self.drop_ratio
        return ratio if time.monotonic() - when < 3.0 else float("nan")

    # -- the loop -----------------------------------------------------------------------------
    def _window(self) -> tuple[float, float, int, float]:
        """Returns (stylized fps of the slowest camera stream, latency p50 ms, samples, stylized fps of all
        streams) over the last two control periods."""
        horizon = max(2.0, 2 * self.values["period"])
        return stream_window(self.arrivals, time.monotonic(), horizon)

    def _control(self):
        self._read_style()
        mode = self.values["mode"]
        fps, p50, n, total = self._window()
        drops = self._drops()
        if mode == "manual":
            self.retention, self.scale = self.values["retention"], self.values["resolution_scale"]
            self.decision, self.level = (f"manual: retention {self.retention:.2f}, resolution_scale "
                                         f"{self.scale:.2f}"), OK
        elif mode == "depth_lod":
            self._depth_lod()
        else:
            self._target_fps(fps, p50, n, drops, total)
        self._push()

    def _target_fps(self, fps: float, p50: float, n: int, drops: float, total: float):
        v, h = self.values, self.values["hysteresis"]
        if n < 2:
            self.decision, self.level = "target_fps: no stylized frames in the window; holding", WARN
            return
        why = f"fps {fps:.1f} (target {v['target_fps']:.1f} +/-{h:.0%}), p50 {p50:.0f} ms"
        lat_high = v["target_latency_ms"] > 0 and p50 > v["target_latency_ms"] * (1 + h)
        # Below target but not dropping frames means the camera is the limit, not the style node.
        camera_limited = drops == drops and drops < 0.05
        too_slow = (fps < v["target_fps"] * (1 - h) and not camera_limited) or lat_high
        headroom = ((fps > v["target_fps"] * (1 + h) or camera_limited) and not lat_high
                    and not (v["target_latency_ms"] > 0 and p50 > v["target_latency_ms"] * (1 - h)))
        before = (self.retention, self.scale, self.detection_rate)
        # the camera frames offered to the style node: what it stylized plus what it dropped
        offered = total / (1.0 - drops) if drops == drops and drops < 1.0 else total
        cost_txt = ""
        if too_slow:
            self.gate.degraded()
            # Degrade style first (retention, then resolution); detection only when style is at its floor.
            lower = next_level(self.levels, self.retention, False, v["retention_min"]) if self.levels else None
            if lower is not None:
                self.retention = lower
            elif not self.levels and self.retention > v["retention_min"] + 1e-6:
                self.retention = max(v["retention_min"], self.retention - v["step"])
            elif self.scale > v["resolution_min"] + 1e-6 and "resolution_scale" not in self.refused:
                self.scale = max(v["resolution_min"], round(self.scale - 0.125, 3))
            elif self.det_client is not None:
                start = v["detection_rate_max"] or DETECTION_RATE_START * 2
                self.detection_rate = max(v["detection_rate_min"], (self.detection_rate or start) / 2)
        elif headroom and (up := self._raised(v)) is not None:
            load = self.costs.load(up[0], offered, time.monotonic()) if up[0] != self.retention else float("nan")
            if load > 1.0:    # that level was seen not keeping up with this many frames: no retry yet
                self.gate.held()
                cost_txt = (f" -> hold: retention {up[0]:.2f} took {1e3 * load / offered:.0f} ms per frame lately, "
                            f"{load:.0%} of the style node's time at {offered:.1f} frames/s")
            elif self.gate.headroom():
                self.retention, self.scale, self.detection_rate = up
        else:
            self.gate.held()
        after = (self.retention, self.scale, self.detection_rate)
        drop_txt = f", style dropped {drops:.0%} of camera frames" if drops == drops else ""
        if after != before:
            self.decision = (f"target_fps: {why}{drop_txt} -> {'degrade' if too_slow else 'restore'}: retention "
                             f"{before[0]:.2f}->{after[0]:.2f}, resolution_scale {before[1]:.3f}->{after[1]:.3f}, "
                             f"detection rate_limit {_rate(before[2])}->{_rate(after[2])}")
        elif cost_txt:
            self.decision = f"target_fps: {why}{drop_txt}{cost_txt}"
        elif headroom and self.gate.calm:
            self.decision = (f"target_fps: {why}{drop_txt} -> hold: headroom for {self.gate.calm} of the "
                             f"{self.gate.need} periods before a raise")
        else:
            self.decision = f"target_fps: {why}{drop_txt} -> hold (within band or at bound)"
        self.level = WARN if too_slow and after == before else OK

    def _raised(self, v: dict):
        """Returns (retention, scale, detection rate) one step up, in the reverse order of degrading
        (detection, then resolution, then retention), or None when everything is at its best."""
        r, scale, rate = self.retention, self.scale, self.detection_rate
        if rate is not None:
            return r, scale, (None if rate * 2 > (v["detection_rate_max"] or DETECTION_RATE_START) else rate * 2)
        if scale < 1.0 - 1e-6:
            return r, min(1.0, round(scale + 0.125, 3)), rate
        if self.levels:
            up = next_level(self.levels, r, True, v["retention_max"])
            return None if up is None else (up, scale, rate)
        if r < v["retention_max"] - 1e-6:
            return min(v["retention_max"], r + v["step"]), scale, rate
        return None

    def _depth_lod(self):
        v = self.values
        if self.depth is None:
            self.decision, self.level = "depth_lod: no depth frames yet; holding", WARN
            return
        view, encoding = self.depth
        depth_m = view.astype(np.float32) * (1.0 if encoding == "32FC1" else 1e-3)
        self.retention, nearest = depth_retention(depth_m, v["depth_near_m"], v["depth_far_m"],
                                                  v["retention_min"], v["retention_max"])
        self.decision = (f"depth_lod: nearest content {nearest:.2f} m (near {v['depth_near_m']} m, far "
                         f"{v['depth_far_m']} m) -> retention {self.retention:.2f}")
        self.level = OK

    def _push(self):
        style = {"retention": round(float(self.retention), 4), "resolution_scale": round(float(self.scale), 4)}
        self._set(self.style_client, {k: x for k, x in style.items()
                                      if self.pushed.get(k) != x and self.refused.get(k, (None,))[0] != x}, "style")
        if self.det_client is not None:
            # unlimited by the loop: the graph's own detection rate, not 0 (which would lift the launch's limit)
            rate = self.values["detection_rate_max"] if self.detection_rate is None else float(self.detection_rate)
            if self.pushed.get("rate_limit") != rate:
                self._set(self.det_client, {"rate_limit": rate}, "detection")

    def _set(self, client, params: dict, who: str):
        if not params or not client.service_is_ready():
            return
        if client is self.style_client and not all(k in self.style_actual for k in self.FOLLOWED):
            return      # the loop starts from what is in effect: wait for the read-back
        req = SetParameters.Request(parameters=[Parameter(k, value=x).to_parameter_msg() for k, x in params.items()])
        if client is self.style_client:
            self.in_flight.update(params)
        future = client.call_async(req)

        def done(f, params=params):
            results = f.result().results if f.result() else []
            if client is self.style_client:
                for k in params:
                    self.in_flight.pop(k, None)
            for (k, x), r in zip(params.items(), results):
                if r.successful:
                    self.pushed[k] = x
                    continue
                self.get_logger().warning(f"{who} rejected {k}={x}: {r.reason}", throttle_duration_sec=5.0)
                if client is self.style_client:
                    # follow what runs: not asked again until something changes, and the loop skips the lever
                    self.refused[k] = (x, r.reason)
                    if k == "resolution_scale":
                        self.scale = self.style_actual.get(k, 1.0)
                    elif k == "retention":
                        self.retention = self.style_actual.get(k, self.retention)
        future.add_done_callback(done)

    def _report(self):
        fps, p50, n, _ = self._window()
        self.diag.status("control", self.level, self.decision, diagnostics.kv(
            mode=self.values["mode"], stylized_fps=f"{fps:.2f}", stylized_latency_p50_ms=f"{p50:.1f}",
            retention=f"{self.retention:.3f}", resolution_scale=f"{self.scale:.3f}",
            style_retention=_known(self.style_actual.get("retention")),
            style_resolution_scale=_known(self.style_actual.get("resolution_scale")),
            style_overrides=self.overrides, last_style_override=self.last_override,
            style_refused="; ".join(f"{k}={x:g}: {why}" for k, (x, why) in self.refused.items()),
            detection_rate_limit=_rate(self.detection_rate), raise_after_periods=self.gate.need,
            level_inference_ms=self.costs.summary(time.monotonic()),
            style_node_ready=self.style_client.service_is_ready(),
            depth_frames_received=self.depth_stats.received, depth_frames_bad=sum(self.depth_stats.bad.values()),
            **{f"depth_bad_{k}": v for k, v in sorted(self.depth_stats.bad.items())}))


def _known(value) -> str:
    return "unknown" if value is None else f"{value:.3f}"


def _rate(rate) -> str:
    return "unlimited" if rate is None else f"{rate:.1f} Hz"


def main(args=None) -> int:
    return spin.run_node(ControllerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
