"""`muon-ad bench method` end to end at tiny settings (the report's structure, not its figures), and the
statistics it rests on."""
import json
import math

from muon_ad_ros.bench import method as bench_method


def test_bench_method_fast_writes_reports_over_seeds(tmp_path):
    assert bench_method.main(["--fast", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "method.json").read_text())
    assert {len(result["seeds"][o]) for o in ("muon", "adamw")} == {2}
    assert list(result["ablation"]) == ["baseline", "+ dynamic mask", "+ curriculum", "+ projection"]
    assert all(len(runs) == 2 for runs in result["ablation"].values())
    assert [p["label"] for p in result["pruning"]["dynamic"]] == ["r=1.0", "r=0.7", "r=0.4"]
    assert len(result["pruning"]["static"]) == 2
    assert result["claims"]["iteration_claim"] in ("met", "missed", "inconclusive")
    md = (tmp_path / "method.md").read_text()
    assert "Muon vs AdamW" in md and "Pruning curve" in md
    assert (tmp_path / "method.png").stat().st_size > 1000
    aux = result["auxiliary"]
    assert aux["lr"] == {"chosen": result["lr"]["adamw"], "method": 3e-4}
    assert len(aux["runs"]["method"]) == 2 and aux["runs"]["chosen"] == result["seeds"]["muon"]
    assert aux["verdict"] in ("better", "worse", "no difference") and "auxiliary AdamW lr" in md


def test_bench_method_runs_one_part_alone(tmp_path):
    """--parts aux trains both auxiliary lrs itself (no sweep) and reports only that part."""
    assert bench_method.main(["--fast", "--parts", "aux", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "method.json").read_text())
    assert "seeds" not in result and "ablation" not in result and "pruning" not in result
    assert {k: len(v) for k, v in result["auxiliary"]["runs"].items()} == {"chosen": 2, "method": 2}
    md = (tmp_path / "method.md").read_text()
    assert "auxiliary AdamW lr" in md and "Muon vs AdamW" not in md
    assert (tmp_path / "method.png").stat().st_size > 1000


def test_mean_ci_and_verdicts():
    ci = bench_method.mean_ci([0.3, 0.35, 0.4, 0.32, 0.38])
    assert abs(ci["mean"] - 0.35) < 1e-9 and ci["n"] == 5
    # sample std sqrt(0.0068 / 4), t(0.975, 4) = 2.776
    assert abs(ci["ci95"] - 2.776 * math.sqrt(0.0068 / 4) / math.sqrt(5)) < 1e-3
    assert bench_method.verdict(ci, 0.45) == "met"            # the interval [0.299, 0.401] lies below
    assert bench_method.verdict(ci, 0.25) == "missed"
    assert bench_method.verdict(ci, 0.36) == "inconclusive"
    assert bench_method.mean_ci([None, float("nan")])["n"] == 0


def test_reach_and_pair_on_hand_made_curves():
    curve = lambda vals: [{"step": 10 * i, "cpu_s": float(i), "total": v} for i, v in enumerate(vals)]  # noqa: E731
    adamw = {"seed": 0, "best": 2.0, "curve": curve([5, 4, 3, 2])}
    muon = {"seed": 0, "best": 1.0, "curve": curve([5, 1.9, 1.5, 1.0])}
    p = bench_method.pair(muon, adamw)
    assert p["muon_iters_to_adamw_best"] == 10 and p["adamw_iters_to_own_best"] == 30
    assert abs(p["iteration_ratio"] - 1 / 3) < 1e-9 and p["adamw_iters_to_muon_best"] is None
    assert bench_method.reach(adamw["curve"], 0.5) is None


def test_static_network_matches_the_dynamic_flops():
    from muon_ad_ros.model.student import Student, StudentConfig
    full = Student()
    for level in (0.7, 0.4):
        widths, hidden = bench_method.static_width(level)
        frac = Student(StudentConfig(widths=widths, res_hidden=hidden)).flops(256, 256) / full.flops(256, 256)
        assert abs(frac - full.flops(256, 256, level) / full.flops(256, 256)) < 0.1, (level, widths, frac)
