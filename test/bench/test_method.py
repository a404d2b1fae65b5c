"""`muon-ad bench method` end to end at tiny settings: the report's structure, not its figures."""
import json

from muon_ad_ros.bench import method as bench_method


def test_bench_method_fast_writes_reports(tmp_path):
    assert bench_method.main(["--fast", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "method.json").read_text())
    assert {r["optimizer"] for r in result["runs"]} == {"muon", "adamw"}
    assert [a["name"] for a in result["ablation"]] == ["baseline", "+ dynamic mask", "+ curriculum", "+ projection"]
    assert result["ablation"][-1]["flags"] == {"dynamic_mask": True, "curriculum": True, "projection": True}
    assert "Muon vs AdamW" in (tmp_path / "method.md").read_text()
    assert (tmp_path / "loss_curves.png").stat().st_size > 1000


def test_reach_and_compare_hand_made_curves():
    curve = lambda vals: [{"step": 10 * i, "seconds": float(i), "total": v} for i, v in enumerate(vals)]
    runs = [{"optimizer": "adamw", "lr": 1e-3, "best_val": 2.0, "curve": curve([5, 4, 3, 2]),
             "loss_std_second_half": 0.2},
            {"optimizer": "muon", "lr": 0.02, "best_val": 1.0, "curve": curve([5, 1.9, 1.5, 1.0]),
             "loss_std_second_half": 0.1}]
    s = bench_method.compare(runs)
    assert s["adamw_iterations_to_best"] == 30 and s["muon_iterations_to_adamw_best"] == 10
    assert abs(s["iteration_ratio"] - 1 / 3) < 1e-9
    assert bench_method.reach(runs[0]["curve"], 0.5) is None
