"""`muon-ad bench order` over the before-order checkpoints of two tiny distill runs (seeds): the report's
structure and its paired statistics, not its figures."""
import json

from muon_ad_ros.bench import order as bench_order
from muon_ad_ros.train import distill


def test_bench_order_over_seeds(tmp_path):
    checkpoints = []
    for seed in (0, 1):
        ck = tmp_path / f"seed{seed}"
        assert distill.main(["--style", "mosaic", "--fast", "--seed", str(seed), "--no-export",
                             "--out", str(ck)]) == 0
        checkpoints.append(str(ck / "before_order.pt"))
    out = tmp_path / "bench"
    assert bench_order.main(["--checkpoint", *checkpoints, "--random", "2", "--size", "64x64",
                             "--out", str(out)]) == 0
    report = json.loads((out / "bench_order.json").read_text())
    assert len(report["results"]) == 2 and set(report["results"][0]) == {"current", "importance", "l1",
                                                                          "random0", "random1"}
    row = report["summary"]["0.40"]
    assert row["random_mean"]["n"] == 2 and row["l1"]["l1"]["n"] == 2
    assert row["l1"]["verdict"] in ("better", "worse", "inconclusive")
    # the paired difference is the mean over seeds of (l1 - that seed's random mean)
    diffs = [r["l1"]["0.40"]["l1"] - (r["random0"]["0.40"]["l1"] + r["random1"]["0.40"]["l1"]) / 2
             for r in report["results"]]
    assert abs(row["l1"]["minus_random"]["mean"] - sum(diffs) / 2) < 1e-9
    assert "| 0.40 | l1 |" in (out / "bench_order.md").read_text()
    assert (out / "bench_order.png").stat().st_size > 1000


def test_bench_order_rejects_a_checkpoint_without_scores(tmp_path):
    import pytest
    import torch
    bad = tmp_path / "bad.pt"
    torch.save({"step": 3}, bad)
    with pytest.raises(SystemExit) as exc:
        bench_order.main(["--checkpoint", str(bad), "--out", str(tmp_path)])
    assert exc.value.code == 2
