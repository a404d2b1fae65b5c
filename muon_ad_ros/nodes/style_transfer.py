"""style_transfer node: stylizes the latest camera frame with the Muon-AD student under SCHED_FIFO
and publishes the stylized image (source header unchanged) and the pruning state."""
from __future__ import annotations

import threading
import time

from rclpy.node import Node
from sensor_msgs.msg import Image

from muon_ad_ros.msg import PruningState
from muon_ad_ros.nodes import declare, diagnostics, frames, images, qos, spin
from muon_ad_ros.nodes.diagnostics import ERROR, OK, STALE, WARN
from muon_ad_ros.nodes.compressed import CompressedTwin, twin_values
from muon_ad_ros.nodes.links import LinkMonitor
from muon_ad_ros.params import style_transfer as style_params
from muon_ad_ros.runtime import realtime
from muon_ad_ros.model.bundle import default_model_dir
from muon_ad_ros.runtime.style import open_style_backend



class StyleTransferNode(Node):
    def __init__(self):
        super().__init__("style_transfer")
        self.stats = frames.FrameStats()
        # wait: in the latest-frame slot; convert: the message's view and colour conversion; pre/run/post: the
        # backend (frame to network input, the network, back to a frame); publish: the messages out
        self.stages = frames.StageTimes(("wait", "convert", "pre", "run", "post", "publish"))
        self.diag = diagnostics.Diagnostics(self)
        self.backend = None
        self.backend_key = None
        self.backend_note = ""
        self._pending = None
        self._started = False
        self.values = declare.declare_params(self, style_params.PARAMS, self._check, self._on_change)
        self._started = True
        self._open_initial_backend()

        self.rt_status: realtime.RealtimeStatus | None = None
        self._rt_dirty = True
        self.batched = 0                            # frames stylized in a call with another stream's frame
        self.frame_hw = None                        # the last frame's (height, width)
        self.last_state = None
        self.qos = qos.image_qos()
        topics = self.values["input_topics"]
        self.slots = [frames.LatestFrame() for _ in topics]
        self.to_rgb = [images.RgbConverter() for _ in topics]     # one buffer per stream: a batch holds both
        self.wake = threading.Event()
        self.image_pubs, self.subs, self.twins = [], [], []
        self.links = LinkMonitor(self, self.diag, lambda: self.values["stale_timeout"])
        for k, topic in enumerate(topics):
            out = "stylized/image_raw" if k == 0 else f"stylized/image_raw_{k}"
            sub_cb, _ = qos.qos_event_callbacks(self, self.resolve_topic_name(topic), self.qos)
            _, pub_cb = qos.qos_event_callbacks(self, self.resolve_topic_name(out), self.qos)
            self.subs.append(self.links.subscription(Image, topic, lambda m, k=k: self._on_image(k, m), self.qos,
                                                     event_callbacks=sub_cb, expect_data=True))
            self.image_pubs.append(self.links.publisher(Image, out, self.qos, event_callbacks=pub_cb))
            self.twins.append(CompressedTwin(self, out, self.qos, self.values))
        self.state_pub = self.links.publisher(PruningState, "stylized/pruning_state", qos.reliable_qos())
        self.diag.add_provider(self._report)
        self._running = True
        self.worker = threading.Thread(target=self._work, name="style_inference", daemon=True)
        self.worker.start()

    # -- parameters ---------------------------------------------------------------------------
    def _model_key(self, values: dict) -> tuple:
        engine = ()
        if values["backend"] == "tensorrt":
            engine = ((values["engine_height"], values["engine_width"]), values["dla_core"],
                      values["engine_cache_dir"], values["calibration_dir"])
        return (values["model_dir"] or str(default_model_dir()), values["backend"], values["precision"],
                values["threads"], engine)

    def _open(self, key: tuple):
        model_dir, backend, precision, threads, engine = key
        # one network call for several streams' frames needs batch-sized ONNX Runtime sessions
        options = {"batch": True} if backend == "onnxruntime" and self._batching() else {}
        if engine:
            hw, dla, cache, calibration = engine
            options = {"input_hw": hw, "dla_core": dla if dla >= 0 else None, "cache_dir": cache or None,
                       "calibration_dir": calibration or None}
        return open_style_backend(backend, model_dir, threads=threads, precision=precision, **options)

    def _batching(self) -> bool:
        return self.values["batch_streams"] and len(self.values["input_topics"]) > 1

    def _check(self, values: dict) -> str | None:
        reason = style_params.check(values)
        if reason or not self._started:
            return reason
        key = self._model_key(values)
        if key != self.backend_key:
            # Open the new model while validating, so a bad path or file is rejected with its
            # reason and the running model stays.
            try:
                self._pending = (key, self._open(key))
            except Exception as exc:
                return f"cannot load {key[0]} with {key[1]}/{key[2]}: {exc}"
        backend = self._pending[1] if self._pending else self.backend
        reason = backend.scale_refusal(values["resolution_scale"]) if backend is not None else None
        if reason:
            self._pending = None
        return reason

    def _on_change(self, name: str, value):
        if name in ("sched_priority", "cpu_core"):
            self._rt_dirty = True
        if self._pending is not None:
            (self.backend_key, self.backend), self._pending = self._pending, None
            self.backend_note = ""
            self.get_logger().info(f"switched to {self.backend_key[0]} ({self.backend.name}, "
                                   f"{self.backend.precision})")

    def _open_initial_backend(self):
        key = self._model_key(self.values)
        try:
            self.backend, self.backend_key = self._open(key), key
            refusal = self.backend.scale_refusal(self.values["resolution_scale"])
            if refusal:
                self.get_logger().warning(f"{refusal}; running at resolution_scale 1")
            return
        except Exception as exc:
            note = f"cannot load {key[0]} with {key[1]}/{key[2]}: {exc}"
        if key[1] != "onnxruntime":
            fallback = (key[0], "onnxruntime", "fp32", key[3], ())
            try:
                self.backend, self.backend_key = self._open(fallback), fallback
                self.backend_note = f"{note}; fell back to onnxruntime/fp32 on CPU"
                self.get_logger().warning(self.backend_note)
                return
            except Exception as exc2:
                note = f"{note}; CPU fallback failed too: {exc2}"
        self.backend_note = note
        self.get_logger().error(f"{note}. Frames are dropped until a valid model_dir is set.")

    # -- frames -------------------------------------------------------------------------------
    def _on_image(self, k: int, msg: Image):
        self.stats.on_input()
        if self.slots[k].put((msg, time.perf_counter())):
            self.stats.on_dropped()
        self.wake.set()

    def _work(self):
        k = 0
        while self._running:
            if self._rt_dirty:
                self._rt_dirty = False
                self._apply_realtime()
            if not self.wake.wait(0.5):
                continue
            self.wake.clear()
            n = len(self.slots)
            # every stream's latest frame, round robin from a rotating start
            items = [(j, *item) for j in ((k + i) % n for i in range(n)) if (item := self.slots[j].take(0))]
            k = (k + 1) % n
            try:
                self._process(items)
            except Exception as exc:    # the worker must outlive any one frame
                if not self._running:
                    return              # shutting down: the context is already gone
                self.stats.on_bad("publish")
                self.get_logger().error(f"frame failed: {exc}", throttle_duration_sec=5.0)
            if any(s.pending() for s in self.slots):
                self.wake.set()

    def _apply_realtime(self):
        core = self.values["cpu_core"]
        try:
            self.rt_status = realtime.apply_realtime(self.values["sched_priority"], (core,) if core >= 0 else ())
        except ValueError as exc:
            self.rt_status = realtime.RealtimeStatus("SCHED_OTHER", 0, False, str(exc), threading.get_native_id())
        # one severity per call site: rclpy refuses a call site's second severity (ValueError)
        if self.rt_status.ok:
            self.get_logger().info(f"inference thread {self.rt_status.thread_id}: {self.rt_status.reason}")
        else:
            self.get_logger().warning(f"inference thread {self.rt_status.thread_id}: {self.rt_status.reason}")

    def _process(self, items: list):
        """Stylizes the streams' latest frames [(stream, message, arrival time)]: in one network call where the
        backend takes batches and the frames share a size, else one call each."""
        backend = self.backend
        frames = []
        for k, msg, arrived in items:
            t_start = time.perf_counter()
            try:
                view = images.image_view(msg, tuple(images.TO_RGB), self.values["max_image_dim"])
            except images.ImageError as exc:
                self.stats.on_bad(exc.reason)
                continue
            if backend is None:
                self.stats.on_bad("no_model")
                continue
            self.frame_hw = view.shape[:2]
            rgb = self.to_rgb[k](view, msg.encoding)
            frames.append((k, msg, rgb, (t_start - arrived) * 1e3, (time.perf_counter() - t_start) * 1e3))
        if len(frames) > 1 and backend.batch and self.values["batch_streams"] and len({f[2].shape for f in frames}) == 1:
            self.batched += len(frames)
            self._stylize(backend, frames)
        else:
            for frame in frames:
                self._stylize(backend, [frame])

    def _stylize(self, backend, frames: list):
        """Runs the frames [(stream, message, rgb, wait ms, convert ms)] through the backend in one call and
        publishes each stream's output with its message's header."""
        retention = self.values["retention"]
        scale = self.values["resolution_scale"]
        t0 = time.perf_counter()
        try:
            outs = backend.infer_many([f[2] for f in frames], retention,
                                      1.0 if backend.scale_refusal(scale) else scale)
        except Exception as exc:
            for _ in frames:
                self.stats.on_bad("inference")
            h, w = frames[0][2].shape[:2]
            self.get_logger().error(f"inference failed on {len(frames)} {w}x{h} frame(s): {exc}",
                                    throttle_duration_sec=5.0)
            return
        infer_ms = (time.perf_counter() - t0) * 1e3
        # a batch's backend time is shared among its frames
        pre, run, post = (ms / len(frames) for ms in backend.stage_ms)
        for (k, msg, _, wait, convert), out in zip(frames, outs):
            t1 = time.perf_counter()
            self.image_pubs[k].publish(images.fill_image(Image(), out, "rgb8", msg.header))
            self.twins[k].publish(out, "rgb8", msg.header)
            self.last_state = self._pruning_state(backend, retention, msg.header, infer_ms)
            self.state_pub.publish(self.last_state)
            self.stats.on_output(images.stamp_seconds(msg.header.stamp), self.values["deadline_ms"])
            self.stages.add(wait=wait, convert=convert, pre=pre, run=run, post=post,
                            publish=(time.perf_counter() - t1) * 1e3)

    def _pruning_state(self, backend, retention: float, header, infer_ms: float) -> PruningState:
        info = backend.pruning_state(retention)
        return PruningState(header=header, retention_requested=float(retention), retention_level=float(info.level),
                            retention_levels=[float(lv) for lv in backend.levels],
                            retention_per_stage=[float(r) for r in info.retention_per_stage],
                            context_groups=[int(g) for g in info.context_groups],
                            flops_fraction=float(info.flops_fraction), inference_ms=float(infer_ms))

    # -- diagnostics --------------------------------------------------------------------------
    def _report(self):
        values = self.stats.key_values() + self.stages.key_values()
        rt = self.rt_status
        if rt is not None:
            values += diagnostics.kv(sched_policy=rt.policy_name, sched_priority=rt.priority,
                                sched_requested=self.values["sched_priority"], inference_thread_id=rt.thread_id,
                                cpu_affinity=list(rt.cpu_affinity), sched_note=rt.reason)
        b = self.backend
        values += diagnostics.kv(backend=b.name if b else "none", precision=b.precision if b else "none",
                            device=b.device if b else "none", model_dir=self.backend_key[0] if self.backend_key else "",
                            retention=self.values["retention"], resolution_scale=self.values["resolution_scale"],
                            model_input_scale=b.scale if b else "none", frames_batched=self.batched,
                            **twin_values(self.twins))
        if b is not None and b.frame_hw is not None:
            values += diagnostics.kv(engine_frame_size=f"{b.frame_hw[1]}x{b.frame_hw[0]}")
        st = self.last_state
        if st is not None:
            values += diagnostics.kv(retention_level=round(st.retention_level, 3),
                                context_groups=list(st.context_groups),
                                flops_fraction=round(st.flops_fraction, 3), inference_ms=round(st.inference_ms, 1))
        stale = self.stats.stale_reason(self.values["stale_timeout"])
        refusal = b.scale_refusal(self.values["resolution_scale"]) if b is not None else None
        notes = [x for x in (self.backend_note, rt.reason if rt and not rt.ok else "",
                             f"{refusal}; running at resolution_scale 1" if refusal else "",
                             self._engine_size_note(b)) if x]
        if b is None:
            level, message = ERROR, f"no model loaded: {self.backend_note}"
        elif stale:
            level, message = STALE, stale
        elif notes:
            level, message = WARN, "; ".join(notes)
        else:
            level, message = OK, f"stylizing at {self.stats.rate():.1f} Hz"
        self.diag.status("style", level, message, values)

    def _engine_size_note(self, b) -> str:
        """Return a warning when frames are resized to the fixed-shape models' frame size, else ''."""
        if b is None or b.frame_hw is None or self.frame_hw in (None, b.frame_hw):
            return ""
        (h, w), (eh, ew) = self.frame_hw, b.frame_hw
        return (f"{w}x{h} frames are resized to the {ew}x{eh} the {b.name} engines were built for (set "
                "engine_width and engine_height to the camera's size)")

    def close(self):
        self._running = False
        self.wake.set()
        self.worker.join(timeout=2.0)
        if self.backend is not None and not self.worker.is_alive():
            self.backend.close()     # inference sessions end before DDS and the interpreter do


def main(args=None) -> int:
    return spin.run_node(StyleTransferNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
