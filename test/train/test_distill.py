"""`muon-ad distill` and `muon-ad stylize` end to end (tiny settings), and the image data they use."""
import dataclasses
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from muon_ad_ros.train import data, distill, stylize


@pytest.fixture(scope="module")
def photos():
    return [data.skimage_image(n) for n in ("astronaut", "coffee", "camera")]


def test_distill_fast_writes_bundle_and_record(tmp_path):
    out = tmp_path / "bundle"
    assert distill.main(["--style", "mosaic", "--fast", "--out", str(out), "--seed", "3", "--precision", "bf16"]) == 0
    meta = json.loads((out / "model.json").read_text())
    record = json.loads((out / "training.json").read_text())
    assert record["train_config"]["precision"] == "bf16"
    assert record["seed"] == 3 and "--seed 3" in record["command"] and record["command"].startswith("muon-ad distill")
    assert "git_commit" in record and len(record["log"]) == distill.FAST["iters"]
    assert meta["training"]["seed"] == 3 and meta["style"]["licence"]
    assert (out / "loss_curve.png").stat().st_size > 1000 and (out / "checkpoint.pt").is_file()
    level = meta["levels"][0]
    sess = ort.InferenceSession(str(out / level["onnx"]), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"image": np.random.rand(1, 3, 64, 96).astype(np.float32)})[0]
    assert y.shape == (1, 3, 64, 96) and 0 <= y.min() and y.max() <= 1


def test_distill_resume_continues_from_checkpoint(tmp_path):
    out = tmp_path / "b"
    assert distill.main(["--style", "ihc", "--fast", "--out", str(out), "--no-export"]) == 0
    first = json.loads((out / "training.json").read_text())["log"]
    n = distill.FAST["iters"]
    assert distill.main(["--style", "ihc", "--fast", "--iters", str(n + 4), "--out", str(out), "--no-export",
                         "--resume", str(out / "checkpoint.pt")]) == 0
    log = json.loads((out / "training.json").read_text())["log"]
    assert [r["step"] for r in log] == list(range(n + 4))
    assert log[:n] == first  # the resumed run kept the earlier record


def test_training_lowers_the_style_loss(photos):
    cfg = distill.TrainConfig(iters=40, batch=2, crop=64, style_side=96, validate_every=40, reorder_every=20,
                              projection=False, curriculum=False, dynamic_mask=False, teacher_weight=0.0,
                              teacher_feature_weight=0.0)
    trainer = distill.Distiller(cfg, data.make_mosaic(128), photos)
    before = trainer.validate()
    while trainer.step < cfg.iters:
        trainer.train_step()
    assert trainer.validate() < before


def test_distill_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        distill.main(["--style", "mosaic", "--crop", "60", "--out", str(tmp_path)])
    assert "--crop" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="nope.png"):
        distill.main(["--style", str(tmp_path / "nope.png"), "--fast", "--out", str(tmp_path)])
    for bad in (["--half-width", "12"], ["--tv-weight", "-1"], ["--lattice-period", "12"],
                ["--gram-weight", "-1"], ["--periodic-weight", "-1"], ["--style-side", "100"],
                ["--self-distill", "-1"], ["--stats-layers", "rgb,conv3"], ["--colour-weight", "-1"],
                ["--input-scale", "1.5"], ["--input-scale", "true"], ["--precision", "fp16"]):
        with pytest.raises(SystemExit):
            distill.main(["--style", "mosaic", "--fast", "--out", str(tmp_path), *bad])
        assert bad[0] in capsys.readouterr().err


def test_distill_half_width_and_tv_weight_reach_the_bundle(tmp_path):
    out = tmp_path / "bundle"
    assert distill.main(["--style", "mosaic", "--fast", "--out", str(out), "--half-width", "8",
                         "--tv-weight", "3", "--style-side", "128", "--stats-layers", "rgb,block5",
                         "--gram-weight", "0.1", "--periodic-weight", "0.05", "--self-distill", "30",
                         "--colour-weight", "2"]) == 0
    meta = json.loads((out / "model.json").read_text())
    record = json.loads((out / "training.json").read_text())
    assert meta["student_config"]["half_width"] == 8
    assert record["train_config"]["tv_weight"] == 3.0
    assert record["train_config"]["style_side"] == 128 and record["train_config"]["gram_weight"] == 0.1
    assert record["train_config"]["stats_layers"] == ["rgb", "block5"]
    assert record["train_config"]["periodic_weight"] == 0.05
    assert record["train_config"]["self_distill"] == 30.0 and record["train_config"]["colour_weight"] == 2.0
    assert all(r["self_distill"] > 0 for r in record["log"])
    from muon_ad_ros.runtime.style import OnnxRuntimeBackend, TorchBackend
    rgb = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    onnx_be, torch_be = OnnxRuntimeBackend(out, threads=1), TorchBackend(out, threads=1)
    for r in (1.0, 0.4):  # the runtime rebuilds the half-resolution stage from the bundle
        a, b = onnx_be.infer(rgb, r), torch_be.infer(rgb, r)
        assert a.shape == (64, 96, 3) and np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_reorder_keeps_function_and_optimizer_state_aligned(photos):
    cfg = distill.TrainConfig(iters=6, batch=1, crop=64, style_side=96, reorder_every=3, validate_every=100,
                              teacher_weight=0.0, teacher_feature_weight=0.0)
    trainer = distill.Distiller(cfg, data.make_mosaic(128), photos)
    for _ in range(2):
        trainer.train_step()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y0 = trainer.student(x, 1.0)
    w = trainer.student.down.weight
    state = trainer.optimizer.state[w]
    key = "momentum" if "momentum" in state else "exp_avg"
    before = {tuple(w[i, 0, 0].tolist()): state[key][i].clone() for i in range(4)}
    trainer.reorder()
    with torch.no_grad():
        assert torch.allclose(trainer.student(x, 1.0), y0, atol=1e-5)
    for i in range(4):  # each row's momentum moved with its weights
        row = tuple(w[i, 0, 0].tolist())
        if row in before:
            assert torch.equal(state[key][i], before[row])


def test_stylize_image_changes_content_towards_style():
    content = data.resize_max(data.skimage_image("astronaut"), 64, 32)
    out = stylize.stylize_image(content, data.make_mosaic(128), iters=3, max_side=64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - content.astype(int)).mean() > 0.5


def test_stylize_main_writes_png(tmp_path):
    src = data.save_image(tmp_path / "c.png", data.resize_max(data.skimage_image("coffee"), 64, 32))
    out = tmp_path / "o.png"
    assert stylize.main(["--content", str(src), "--style", "ihc", "--out", str(out), "--iters", "2",
                         "--max-side", "64"]) == 0
    assert data.load_image(out).shape[2] == 3


def test_data_images_and_errors(tmp_path):
    imgs = data.content_images()
    # video sources give several frames each
    assert len(imgs) > len(data.CONTENT_TRAIN) and all(i.ndim == 3 and i.shape[2] == 3 for i in imgs)
    img, source, licence = data.style_image("ihc")
    assert img.shape == (512, 512, 3) and "copyright" in licence
    with pytest.raises(NotADirectoryError):
        data.content_images(tmp_path / "missing")
    with pytest.raises(ValueError, match="no images"):
        data.content_images(tmp_path)
    data.save_image(tmp_path / "a.png", imgs[0])
    assert len(data.content_images(tmp_path)) == 1
    crops = data.random_crops(imgs, 64, 3, np.random.default_rng(0))
    assert crops.shape == (3, 3, 64, 64) and 0 <= float(crops.min()) and float(crops.max()) <= 1
    mosaic = data.make_mosaic(64)
    assert np.array_equal(mosaic, data.make_mosaic(64))  # deterministic: the shipped style is reproducible


def test_self_distillation_trains_the_full_network_and_a_random_level(photos):
    cfg = distill.TrainConfig(iters=8, batch=1, crop=64, style_side=96, validate_every=100, reorder_every=100,
                              self_distill=10.0, subpixel=1, teacher_weight=0.0, teacher_feature_weight=0.0)
    trainer = distill.Distiller(cfg, data.make_mosaic(128), photos)
    calls = []
    forward = trainer.student.forward
    trainer.student.forward = lambda x, retention=1.0: calls.append(retention) or forward(x, retention)
    for _ in range(cfg.iters):
        rec = trainer.train_step()
        assert rec["self_distill"] >= 0 and 0.4 <= rec["retention"] <= 1.0
    # each step: the loss pass at r = 1.0, then the narrowest level and the logged random retention
    assert calls[0::3] == [1.0] * cfg.iters
    assert calls[1::3] == [0.4] * cfg.iters
    assert calls[2::3] == [r["retention"] for r in trainer.log]
    # the early schedule floor is 0.95; self-distillation draws every level from the start
    assert min(r["retention"] for r in trainer.log) < 0.9


def _fast_log(tmp_path, device):
    out = tmp_path / device
    assert distill.main(["--style", "mosaic", "--fast", "--iters", "4", "--out", str(out), "--no-export",
                         "--device", device]) == 0
    record = json.loads((out / "training.json").read_text())
    return record, [(r["loss"], r["style"], r["content"]) for r in record["log"]]


def test_distill_device_auto_gives_the_cpu_results(tmp_path):
    cpu, cpu_log = _fast_log(tmp_path, "cpu")
    auto, auto_log = _fast_log(tmp_path, "auto")
    assert cpu["device"] == "cpu" and cpu["gpu"] is None
    if torch.cuda.is_available():   # auto picked CUDA: the same run within float tolerance
        assert auto["device"].startswith("cuda") and auto["gpu"]
        assert np.allclose(auto_log, cpu_log, rtol=2e-3, atol=1e-5)
    else:
        assert auto["device"] == "cpu" and auto_log == cpu_log


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_distill_and_stylize_device_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        distill.main(["--style", "mosaic", "--fast", "--out", str(tmp_path), "--device", "cuda"])
    assert exit_info.value.code == 2 and "device cuda: torch" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        stylize.main(["--content", "x.png", "--style", "mosaic", "--out", str(tmp_path / "o.png"),
                      "--device", "cuda"])
    assert "sees no CUDA GPU" in capsys.readouterr().err
    with pytest.raises(ValueError, match="tpu"):
        distill.resolve_device("tpu")


def test_held_out_split_shares_no_source_with_training():
    scene = lambda src: src.split("@")[0].rstrip("0123456789.jpgn").rstrip("LRAB_")
    assert not set(data.CONTENT_EVAL) & set(data.CONTENT_TRAIN)
    assert not {scene(s) for s in data.CONTENT_EVAL} & {scene(s) for s in data.CONTENT_TRAIN}
    assert len(data.content_images(split="eval")) == len(data.CONTENT_EVAL)


def test_skimage_samples_are_read_from_the_override_folder(tmp_path, monkeypatch):
    import shutil
    for name in ("coffee", "immunohistochemistry"):
        shutil.copy(data.skimage_path(name), tmp_path)
    monkeypatch.setenv(data.SKIMAGE_DATA_ENV, str(tmp_path))
    assert data.skimage_path("immunohistochemistry") == tmp_path / "ihc.png"
    assert data.skimage_path("coffee").parent == tmp_path
    with pytest.raises(FileNotFoundError, match=data.SKIMAGE_DATA_ENV):
        data.skimage_image("astronaut")


def test_paired_crops_cut_both_images_alike(photos):
    a, b = data.random_crops(photos, 64, 5, np.random.default_rng(1), paired=photos)
    assert torch.equal(a, b)
    # the unpaired call draws the same crops from the same seed
    assert torch.equal(data.random_crops(photos, 64, 5, np.random.default_rng(1)), a)


def test_channel_order_is_fixed_before_the_last_phase(photos):
    cfg = distill.TrainConfig(iters=12, batch=1, crop=64, style_side=96, validate_every=100, reorder_every=2,
                              order_until=0.5, teacher_weight=0.0, teacher_feature_weight=0.0)
    trainer = distill.Distiller(cfg, data.make_mosaic(128), photos)
    steps, saved = [], []
    trainer.reorder = lambda: steps.append(trainer.step)
    trainer.before_final_order = lambda t: saved.append(t.step)
    while trainer.step < cfg.iters:
        trainer.train_step()
    assert steps == [2, 4, 6] and saved == [6]  # none after step 6 = order_until * iters


def test_teacher_loss_pulls_towards_the_teacher(photos):
    cfg = distill.TrainConfig(iters=1, batch=1, crop=64, style_side=96, validate_every=100, teacher_weight=1.0,
                              teacher_feature_weight=0.0)
    trainer = distill.Distiller(cfg, data.make_mosaic(128), photos[:1])
    assert len(trainer.teacher) == 1 and trainer.teacher[0].shape == trainer.content[0].shape
    rec = trainer.train_step()
    assert rec["teacher"] > 0.02  # the peer restyles the photo; the untrained student barely changes it
    assert "teacher_features" not in rec


def test_training_steps_flush_denormals(photos):
    """The attention terms' softmax leaves denormal probabilities, whose products run ~4x slower on x86: every
    step flushes them to zero, whatever mode the thread is in (ONNX Runtime, the teacher, resets it)."""
    cfg = distill.TrainConfig(iters=2, batch=1, crop=64, style_side=96, validate_every=100, teacher_weight=1.0,
                              teacher_feature_weight=0.0)
    trainer = distill.Distiller(cfg, data.make_mosaic(128), photos[:1])
    try:
        torch.set_flush_denormal(False)  # the default mode, which ONNX Runtime restores; earlier steps set it
        tiny = torch.tensor([1e-40])
        assert (tiny * 1.0).item() > 0
        trainer.train_step()
        assert (tiny * 1.0).item() == 0
    finally:
        torch.set_flush_denormal(False)


def test_bf16_precision_runs_the_step_under_autocast_with_float32_weights(photos):
    cfg = distill.TrainConfig(iters=2, batch=1, crop=64, style_side=96, validate_every=100)
    recs = {}
    for precision in ("fp32", "bf16"):
        trainer = distill.Distiller(dataclasses.replace(cfg, precision=precision), data.make_mosaic(128), photos[:1])
        recs[precision] = trainer.train_step()
        assert all(p.dtype == torch.float32 for p in trainer.student.parameters())
    assert np.isfinite(recs["bf16"]["loss"])
    # same seed, crops and weights: only bfloat16 arithmetic tells the two losses apart
    assert recs["bf16"]["loss"] != recs["fp32"]["loss"]
    assert abs(recs["bf16"]["loss"] - recs["fp32"]["loss"]) < 0.05 * recs["fp32"]["loss"]
    with pytest.raises(ValueError, match="precision"):
        distill.Distiller(dataclasses.replace(cfg, precision="fp16"), data.make_mosaic(128), photos[:1])


def test_teacher_feature_loss_pulls_towards_the_teachers_features(photos):
    """The default perceptual teacher term: logged every step, and steps on it (the other terms off) bring the
    student's features of a fixed crop closer to the teacher's."""
    cfg = distill.TrainConfig(iters=30, batch=1, crop=64, style_side=96, validate_every=100, reorder_every=100,
                              content_weight=0.0, stats_weight=0.0, tv_weight=0.0, self_distill=0.0,
                              dynamic_mask=False, curriculum=False, teacher_feature_weight=1.0)
    assert distill.TrainConfig().teacher_feature_weight > 0  # on in the default recipe
    trainer = distill.Distiller(cfg, data.make_mosaic(128), photos[:1])
    trainer.loss_fn.style_loss = lambda feats, image=None: torch.zeros(())  # only the teacher term trains
    x, t = data.random_crops(trainer.content, 64, 2, np.random.default_rng(3), paired=trainer.teacher)

    def gap():
        with torch.no_grad():
            g, f = trainer.loss_fn.features(trainer.student(x)), trainer.loss_fn.features(t)
        return float(sum((g[l] - f[l]).abs().mean() for l in cfg.teacher_layers))
    before = gap()
    recs = [trainer.train_step() for _ in range(cfg.iters)]
    assert all(r["teacher_features"] > 0 for r in recs)
    assert gap() < 0.9 * before


def test_l1_order_scores_cover_every_group():
    from muon_ad_ros.model.student import Student
    s = Student()
    scores = distill.l1_scores(s)
    assert {k: len(v) for k, v in scores.items()} == s.channel_groups()


def test_border_consistency_compares_the_cut_crops_ring_with_the_same_pixels_of_the_full_crop():
    rng = np.random.default_rng(0)
    full = torch.rand(2, 3, 96, 128)
    inner, cut = distill.inner_crop(full, rng)
    top, bottom, left, right = cut
    assert all(m in (8, 16) for m in cut) and inner.shape[-2:] == (96 - top - bottom, 128 - left - right)
    assert distill.border_consistency(inner, full, cut, 16) == 0  # the same pixels
    framed = inner.clone()
    framed[..., :, -4:] += 0.5  # a band inside the right edge
    assert float(distill.border_consistency(framed, full, cut, 16)) > 0.01
    inside = inner.clone()
    inside[..., 20:-20, 20:-20] += 0.5  # the interior is not the border's business
    assert distill.border_consistency(inside, full, cut, 16) == 0


def test_border_weight_trains_a_shipped_students_border_towards_its_interior(photos):
    """--init a shipped bundle, then steps on the border term alone bring the border of a cut crop closer to
    what the full crop paints at the same pixels."""
    from muon_ad_ros.model.bundle import MODELS_ROOT
    cfg = distill.TrainConfig(iters=25, batch=1, crop=96, style_side=96, validate_every=100, reorder_every=100,
                              content_weight=0.0, stats_weight=0.0, tv_weight=0.0, self_distill=0.0, lr=0.002,
                              dynamic_mask=False, curriculum=False, teacher_feature_weight=0.0, border_weight=10.0,
                              half_width=16)
    trainer = distill.Distiller(cfg, data.make_mosaic(128), photos)
    trainer.init_from(MODELS_ROOT / "mosaic" / "student.pt")
    trainer.loss_fn.style_loss = lambda feats, image=None: torch.zeros(())  # only the border term trains
    x = data.random_crops(trainer.content, 128, 4, np.random.default_rng(3))
    cut = (16, 16, 16, 16)

    def gap():
        with torch.no_grad():
            return float(distill.border_consistency(trainer.student(x[..., 16:-16, 16:-16]), trainer.student(x),
                                                    cut, 16))
    before = gap()
    recs = [trainer.train_step() for _ in range(cfg.iters)]
    assert all(r["border"] > 0 for r in recs)
    assert gap() < 0.8 * before


def test_widened_student_computes_what_the_narrow_one_did():
    from muon_ad_ros.model.student import Student, StudentConfig
    torch.manual_seed(0)
    narrow = Student(StudentConfig(upsample="bilinear", half_width=8)).eval()
    wide = Student(StudentConfig(upsample="bilinear", half_width=8, widths=(40, 80), res_hidden=80)).eval()
    wide.load_state_dict(distill.widened(narrow.state_dict(), wide.state_dict()))
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        for r in (1.0, 0.4):  # 0.4 keeps 16/32 channels of both
            assert torch.allclose(wide(x, r), narrow(x, r), atol=1e-5)
        assert not torch.allclose(wide(x, 0.7), narrow(x, 0.7), atol=1e-3)  # 32/56 kept against 24/48
    with pytest.raises(ValueError, match="cannot widen"):
        distill.widened(wide.state_dict(), narrow.state_dict())


def test_distill_widths_widens_an_init_and_rejects_bad_widths(tmp_path, capsys):
    narrow, wide = tmp_path / "narrow", tmp_path / "wide"
    assert distill.main(["--style", "mosaic", "--fast", "--iters", "1", "--out", str(narrow), "--no-export"]) == 0
    assert distill.main(["--style", "mosaic", "--fast", "--iters", "1", "--out", str(wide), "--no-export",
                         "--init", str(narrow / "checkpoint.pt"), "--widths", "40,80"]) == 0
    ck = torch.load(wide / "checkpoint.pt", weights_only=True)
    assert tuple(ck["config"]["widths"]) == (40, 80) and ck["config"]["res_hidden"] == 80
    assert json.loads((wide / "training.json").read_text())["train_config"]["widths"] == [40, 80]
    with pytest.raises(SystemExit):  # narrowing is no widening
        distill.main(["--style", "mosaic", "--fast", "--out", str(tmp_path / "n"), "--no-export",
                      "--init", str(wide / "checkpoint.pt")])
    assert "another student architecture" in capsys.readouterr().err
    for bad in ("12,80", "40", "a,b"):
        with pytest.raises(SystemExit):
            distill.main(["--style", "mosaic", "--fast", "--out", str(tmp_path / "x"), "--widths", bad])
        assert "--widths must be" in capsys.readouterr().err


def test_distill_init_starts_from_a_bundles_weights(tmp_path, capsys):
    from muon_ad_ros.model.bundle import MODELS_ROOT
    out = tmp_path / "b"
    init = MODELS_ROOT / "mosaic" / "student.pt"
    assert distill.main(["--style", "mosaic", "--fast", "--iters", "1", "--init", str(init), "--out", str(out),
                         "--no-export", "--content-weight", "0", "--stats-weight", "0", "--image-pad", "32",
                         "--half-width", "16"]) == 0
    record = json.loads((out / "training.json").read_text())
    assert record["init"] == str(init) and "--init" in record["command"]
    assert record["train_config"]["image_pad"] == 32
    # the upsampling has no weights: --init may switch it (a fine-tune into the other mode)
    assert distill.main(["--style", "mosaic", "--fast", "--iters", "1", "--init", str(init), "--out", str(out),
                         "--no-export", "--half-width", "16", "--upsample", "bilinear"]) == 0
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["config"]["upsample"] == "bilinear"
    with pytest.raises(SystemExit):
        distill.main(["--style", "mosaic", "--fast", "--init", str(init), "--resume", str(out / "checkpoint.pt"),
                      "--out", str(out)])
    assert "exclude each other" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        distill.main(["--style", "mosaic", "--fast", "--init", str(tmp_path / "none.pt"), "--out", str(out)])
    assert "none.pt" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit):
        distill.main(["--style", "mosaic", "--fast", "--init", str(tmp_path / "junk.pt"), "--out", str(out)])
    assert "junk.pt: not student weights" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the shipped mosaic has the half-resolution stage, this run would not
        distill.main(["--style", "mosaic", "--fast", "--init", str(init), "--out", str(out)])
    assert "(half_width 16 there, 0 here); pass --half-width 16" in capsys.readouterr().err
    assert distill.main(["--style", "mosaic", "--fast", "--iters", "2", "--out", str(tmp_path / "h"), "--no-export",
                         "--half-width", "8"]) == 0
    with pytest.raises(SystemExit):  # resuming that run without the flag
        distill.main(["--style", "mosaic", "--fast", "--iters", "3", "--resume", str(tmp_path / "h" / "checkpoint.pt"),
                      "--out", str(tmp_path / "h")])
    assert "--resume: " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        distill.main(["--style", "mosaic", "--fast", "--border-weight", "1", "--out", str(out)])
    assert "--crop >= 96" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        distill.main(["--style", "mosaic", "--fast", "--image-pad", "20", "--out", str(out)])
    assert "multiple of 16" in capsys.readouterr().err


def test_lattice_penalty_trains_the_grid_out_of_a_shipped_student(photos):
    """--init the shipped starry_night into nearest decoder upsampling (its texture then sits on the 8-px
    lattice), then steps on the lattice term alone (every other term off) lower the lattice pattern of its
    output on a fixed crop."""
    from muon_ad_ros.model.bundle import MODELS_ROOT
    from muon_ad_ros.train import metrics
    cfg = distill.TrainConfig(iters=8, batch=1, crop=96, style_side=96, validate_every=100, reorder_every=100,
                              content_weight=0.0, stats_weight=0.0, tv_weight=0.0, self_distill=0.0,
                              dynamic_mask=False, curriculum=False, teacher_feature_weight=0.0,
                              lattice_weight=1000.0, optimizer="adamw", lr=1e-3, upsample="nearest")
    trainer = distill.Distiller(cfg, data.make_mosaic(128), photos[:1])
    trainer.init_from(MODELS_ROOT / "starry_night" / "student.pt")
    trainer.loss_fn.style_loss = lambda feats, image=None: torch.zeros(())  # only the lattice term trains
    x = data.random_crops(trainer.content, 96, 2, np.random.default_rng(3))

    def energy():
        with torch.no_grad():
            return float(metrics.lattice_pattern(trainer.student(x)).pow(2).mean())
    before = energy()
    recs = [trainer.train_step() for _ in range(cfg.iters)]
    assert all(r["lattice"] > 0 for r in recs)
    assert energy() < 0.5 * before


def test_periodic_penalty_trains_the_check_pattern_out_of_a_shipped_student(photos):
    """--init the shipped ihc into nearest decoder upsampling (its weights then paint a repeating pattern: the
    penalty is ~12.6 on these crops; the shipped starry_night's weights paint little of one either way, ~1.4),
    then steps on the periodic term alone (every other term off) lower that term on a fixed batch of crops."""
    from muon_ad_ros.model.bundle import MODELS_ROOT
    from muon_ad_ros.train.losses import periodic_penalty
    cfg = distill.TrainConfig(iters=8, batch=2, crop=160, style_side=96, validate_every=100, reorder_every=100,
                              content_weight=0.0, stats_weight=0.0, tv_weight=0.0, self_distill=0.0,
                              dynamic_mask=False, curriculum=False, teacher_feature_weight=0.0,
                              half_width=16, periodic_weight=1.0, optimizer="adamw", lr=3e-4, upsample="nearest")
    trainer = distill.Distiller(cfg, data.make_mosaic(128), photos)
    trainer.init_from(MODELS_ROOT / "ihc" / "student.pt")
    trainer.loss_fn.style_loss = lambda feats, image=None: torch.zeros(())  # only the periodic term trains
    x = data.random_crops(trainer.content, 160, 4, np.random.default_rng(3))

    def penalty():
        with torch.no_grad():
            return float(periodic_penalty(trainer.student(x), x))
    before = penalty()
    recs = [trainer.train_step() for _ in range(cfg.iters)]
    assert before > 1 and all("periodic" in r for r in recs)
    assert penalty() < 0.5 * before


def test_steps_in_budget():
    # 21 steps after 30 s at 1 s a step: 30 more fit in a minute, capped by --iters, at least one more
    assert distill.steps_in_budget(21, 30.0, 1.0, 1.0, None) == 51
    assert distill.steps_in_budget(21, 30.0, 1.0, 1.0, 40) == 40
    assert distill.steps_in_budget(21, 90.0, 1.0, 1.0, None) == 22


def test_fit_iters_lays_the_schedules_over_the_new_count(photos):
    cfg = distill.TrainConfig(iters=600, batch=1, crop=64, style_side=96, reorder_every=10, order_until=0.5,
                              teacher_weight=0.0, teacher_feature_weight=0.0)
    trainer = distill.Distiller(cfg, data.make_mosaic(128), photos)
    trainer.train_step()
    trainer.curriculum.lambda_style = 0.5
    trainer.fit_iters(120)
    assert trainer.cfg.iters == 120 and trainer.order_step == 60
    assert trainer.curriculum.bounds == (20, 60) and trainer.curriculum.lambda_style == 0.5
    trainer.step = 20  # phase II of the new schedule: its boundaries stay where they are
    with pytest.raises(ValueError, match="phase I ends at step 20"):
        trainer.fit_iters(600)


def test_distill_minutes_fits_the_run_to_its_budget(tmp_path, capsys):
    out = tmp_path / "b"
    # loading alone spends the 0.01-minute budget: the first fit, after PACE_STEPS timed steps, ends the run
    assert distill.main(["--style", "mosaic", "--fast", "--iters", "200", "--minutes", "0.01", "--out", str(out),
                         "--no-export"]) == 0
    record = json.loads((out / "training.json").read_text())
    n = distill.PACE_STEPS + 2
    assert record["iterations"] == record["train_config"]["iters"] == len(record["log"]) == n
    assert record["minutes"] == 0.01
    for bad in (["--minutes", "0"], ["--minutes", "1", "--resume", str(out / "checkpoint.pt")]):
        with pytest.raises(SystemExit):
            distill.main(["--style", "mosaic", "--fast", "--out", str(tmp_path / "x"), *bad])
    assert "--minutes" in capsys.readouterr().err
