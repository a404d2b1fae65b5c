"""`muon-ad bench detect` runs end to end and writes its JSON and Markdown, latency and accuracy side by side
(timings are reported, never asserted)."""
import json

from muon_ad_ros.bench import detect as bench


def test_bench_writes_json_and_markdown_for_every_backend(tmp_path, capsys):
    assert bench.main(["--out", str(tmp_path), "--runs", "2", "--accuracy-frames", "3"]) == 0
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
    measured = [r for r in report["results"] if r.get("accuracy")]
    assert {r["label"].split()[0] for r in measured} == {"onnxruntime", "opencv_dnn", "opencv_hog"}
    assert all(r["accuracy"]["frames"] == 3 and r["accuracy"]["classes"]["person"]["labelled"] > 0 for r in measured)
    markdown = (tmp_path / "detect_bench.md").read_text()
    latency, accuracy = markdown.split("Accuracy on 3 hand-labelled frames")
    assert latency.count("\n| ") == len(labels) + 1 and "synthetic" in latency
    assert "| person |" in accuracy and "| person at IoU 0.3 |" in accuracy
    assert "cores" in capsys.readouterr().out
