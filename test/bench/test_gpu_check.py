"""`muon-ad gpu-check`: on a machine without a CUDA GPU every part is skipped with its reason and the
command passes; a part that raises is recorded with its first error and fails the command. On a GPU
machine the real run is `make gpu-check` (minutes), so the skip test does not run there."""
import json

import pytest
import torch

from muon_ad_ros import cli
from muon_ad_ros.bench import gpu_check


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU: run `make gpu-check`")
def test_without_a_gpu_every_part_is_skipped_with_its_reason(tmp_path, capsys):
    assert cli.main(["gpu-check", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["ok"] and set(report["parts"]) == set(gpu_check.PARTS)
    for name, part in report["parts"].items():
        assert part["status"] == "skipped" and "sees no CUDA GPU" in part["reason"], name
    assert "tensorrt is not importable" in report["parts"]["detect_tensorrt"]["reason"]
    assert report["environment"]["cuda_available"] is False
    assert sorted(p.name for p in (tmp_path / "calibration").iterdir())   # the bundled photographs
    assert "skipped" in capsys.readouterr().out


def test_a_failing_part_records_its_first_error_and_fails_the_command(tmp_path, monkeypatch):
    def broken(ctx):
        raise ZeroDivisionError("planted failure")

    monkeypatch.setitem(gpu_check.PARTS, "broken", broken)
    assert gpu_check.main(["--out", str(tmp_path), "--parts", "broken"]) == 1
    part = json.loads((tmp_path / "gpu_check.json").read_text())["parts"]["broken"]
    assert part["status"] == "failed" and part["error"] == "ZeroDivisionError: planted failure"
    with pytest.raises(SystemExit):
        gpu_check.main(["--out", str(tmp_path), "--parts", "nope"])
