"""`muon-ad bench order`: which channel order makes the best pruned levels, at the moment it is fixed.

distill saves ``before_order.pt`` just before its last re-ordering (TrainConfig.order_until), with the
importance and L1-norm scores of that moment. Each candidate order (importance, L1 norm, N random
permutations) is applied to a copy of that student, and the pruned levels are compared with the full
network on the held-out photographs (data.CONTENT_EVAL, as frames of --size, or a folder): mean absolute
difference to the r=1.0 output and SSIM to it; "current" keeps the order the student has. The order the last phase starts from is the one whose
levels lose least before any further training.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from muon_ad_ros.train import data, metrics


def apply_order(student, scores: dict[str, torch.Tensor]) -> None:
    """Permute the student's channel groups by descending score (function unchanged)."""
    student.reorder_channels({k: torch.as_tensor(v) for k, v in scores.items()})


@torch.no_grad()
def level_loss(student, frames: list[torch.Tensor], retentions) -> dict:
    """Return {retention: {"l1": mean |y_r - y_1|, "ssim": mean SSIM(y_r, y_1)}} over the frames."""
    out = {}
    for r in retentions:
        l1, ss = [], []
        for x in frames:
            full, pruned = student(x, 1.0), student(x, r)
            l1.append(float((pruned - full).abs().mean()))
            ss.append(metrics.ssim(data.to_uint8(pruned), data.to_uint8(full)))
        out[f"{r:.2f}"] = {"l1": float(np.mean(l1)), "ssim": float(np.mean(ss))}
    return out


def main(argv=None) -> int:
    """`muon-ad bench order --checkpoint before_order.pt [--random 5] --out DIR`; returns the exit status."""
    from muon_ad_ros.train.export import load_checkpoint
    p = argparse.ArgumentParser(prog="muon-ad bench order", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="before_order.pt written by muon-ad distill")
    p.add_argument("--out", default="out/bench", help="output directory (bench_order.json)")
    p.add_argument("--content", default="default", help="folder of photos, or 'default' (held-out split)")
    p.add_argument("--random", type=int, default=5, help="number of random orders")
    p.add_argument("--size", default="320x240", help="WxH of the frames")
    p.add_argument("--retentions", type=float, nargs="+", default=[0.7, 0.4])
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    ck = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
    scores = ck.get("order_scores")
    if not scores:
        p.error(f"{a.checkpoint} has no order_scores (write it with muon-ad distill)")
    w, h = (int(v) for v in a.size.lower().split("x"))
    folder = None if a.content == "default" else a.content
    frames = [data.to_tensor(data.fit_frame(img, w, h)) for img in data.content_images(folder, split="eval")]
    candidates = {"current": None, **scores}  # current: the order the student was trained with so far
    gen = torch.Generator().manual_seed(0)
    for i in range(a.random):
        candidates[f"random{i}"] = {k: torch.randperm(len(v), generator=gen).float() for k, v in scores["l1"].items()}
    results = {}
    for name, s in candidates.items():
        student, _, _ = load_checkpoint(Path(a.checkpoint))
        student.eval()
        if s is not None:
            apply_order(student, s)
        results[name] = level_loss(student, frames, a.retentions)
        print(name, " ".join(f"r={r} L1 {v['l1']:.4f} SSIM {v['ssim']:.3f}" for r, v in results[name].items()))
    rand = {r: [results[f"random{i}"][r]["l1"] for i in range(a.random)] for r in results[next(iter(results))]}
    summary = {r: {"random_min": min(v), "random_mean": float(np.mean(v)), "random_max": max(v),
                   **{n: results[n][r]["l1"] for n in ("current", *scores)}} for r, v in rand.items()} if a.random else {}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": a.checkpoint, "step": ck.get("step"), "frames": len(frames), "size": a.size,
              "results": results, "summary_l1": summary}
    (out / "bench_order.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
