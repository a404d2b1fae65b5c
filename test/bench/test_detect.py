"""`muon-ad bench detect` runs end to end and writes its JSON and Markdown (timings are reported,
never asserted)."""
import json

from muon_ad_ros.bench import detect as bench


def test_bench_writes_json_and_markdown_for_every_backend(tmp_path, capsys):
    assert bench.main(["--out", str(tmp_path), "--runs", "2"]) == 0
    report = json.loads((tmp_path / "detect_bench.json").read_text())
    assert report["machine"]["cores"] >= 1 and "cpu" in report["machine"]
    labels = [r["label"] for r in report["results"]]
    assert any(x.startswith("opencv_hog") for x in labels) and any(x.startswith("onnxruntime") for x in labels)
    assert any(x.startswith("tensorrt") for x in labels)
    for r in report["results"]:
        if r["available"]:
            assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["runs_as"].startswith(r["label"].split()[0])
        else:
            assert r["reason"]
    markdown = (tmp_path / "detect_bench.md").read_text()
    assert markdown.count("\n| ") == len(labels) + 1 and "synthetic" in markdown
    assert "cores" in capsys.readouterr().out
