"""Model bundle export (real ONNX + ONNX Runtime) and the TensorRT engine request for a bundle level."""
import importlib.util
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from muon_ad_ros.train import export
from muon_ad_ros.model.student import Student
from muon_ad_ros.runtime import tensorrt_engine as te

HAS_TRT = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


@pytest.fixture(scope="module")
def student():
    from bundle_helpers import context_student
    return context_student()


@pytest.fixture(scope="module")
def calib():
    return torch.rand(2, 3, 128, 160, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, student, calib):
    out = tmp_path_factory.mktemp("bundle")
    style = {"name": "noise", "image": np.full((64, 64, 3), 200, np.uint8), "licence": "CC0", "source": "test"}
    record = {"command": "muon-ad distill --style noise", "seed": 3, "git_commit": None, "loss_summary": {}}
    export.export_bundle(student, out, (1.0, 0.7, 0.4), calib, style, record, fp16=True)
    return out


def test_bundle_holds_every_file_the_runtime_reads(bundle):
    meta = json.loads((bundle / "model.json").read_text())
    assert meta["format_version"] == export.FORMAT_VERSION
    assert [lv["onnx"] for lv in meta["levels"]] == ["student_r100.onnx", "student_r070.onnx", "student_r040.onnx"]
    for lv in meta["levels"]:
        assert (bundle / lv["onnx"]).stat().st_size <= export.MAX_ONNX_BYTES
        assert (bundle / lv["onnx_fp16"]).is_file()
        assert lv["sha256"] == export.file_sha256(bundle / lv["onnx"])
    assert (bundle / "style.png").is_file() and meta["style"]["licence"] == "CC0"
    assert meta["training"]["seed"] == 3


def test_model_json_records_pruning_state_per_level(bundle, student):
    levels = json.loads((bundle / "model.json").read_text())["levels"]
    full, _, low = levels
    assert full["context_groups"] == [16, 16] and low["context_groups"] == [8, 8]
    assert full["flops_fraction"] == 1.0 and low["flops_fraction"] < 0.45
    assert low["flops_640x480"] == student.flops(480, 640, 0.4)


def test_onnx_is_opset_17_with_named_dynamic_io(bundle):
    model = onnx.load(str(bundle / "student_r100.onnx"))
    onnx.checker.check_model(model)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "image" and out.name == "stylized"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims[:2] == [1, 3] and all(isinstance(d, str) for d in dims[2:])


def test_head_resize_input_is_reshaped_away_from_the_conv(bundle):
    # model/student.py: a Reshape between the head's conv and its full-resolution Resize keeps ONNX
    # Runtime from resizing in its blocked 8-channel layout (measured 1.1-1.2 ms a frame at 640x480)
    model = onnx.load(str(bundle / "student_r040.onnx"))
    producer = {o: n for n in model.graph.node for o in n.output}
    last_resize = [n for n in model.graph.node if n.op_type == "Resize"][-1]
    assert producer[last_resize.input[0]].op_type == "Reshape"
    assert any(n.op_type == "Sigmoid" and n.output[0] == "stylized" for n in model.graph.node)


@pytest.mark.parametrize("level", [1.0, 0.4])
def test_onnx_runtime_matches_torch_at_a_size_other_than_traced(bundle, student, level):
    x = torch.rand(1, 3, 72, 200, generator=torch.Generator().manual_seed(5))
    sess = ort.InferenceSession(str(bundle / f"student_{export.level_tag(level)}.onnx"),
                                providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        want = student(x, level).numpy()
    assert got.shape == (1, 3, 72, 200)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_pruned_onnx_files_are_physically_smaller(bundle):
    sizes = [(bundle / f"student_{t}.onnx").stat().st_size for t in ("r100", "r070", "r040")]
    assert sizes[0] > sizes[1] > sizes[2]


def test_fp16_variant_runs_in_onnx_runtime_close_to_fp32(bundle):
    x = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)
    s32 = ort.InferenceSession(str(bundle / "student_r100.onnx"), providers=["CPUExecutionProvider"])
    s16 = ort.InferenceSession(str(bundle / "student_r100_fp16.onnx"), providers=["CPUExecutionProvider"])
    model16 = onnx.load(str(bundle / "student_r100_fp16.onnx"))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model16.graph.initializer)
    a, b = s32.run(None, {"image": x})[0], s16.run(None, {"image": x})[0]
    assert b.dtype == np.float32
    assert np.abs(a - b).max() < 0.02


def test_student_pt_loads_with_weights_only_and_reproduces_the_levels(bundle, student):
    net, record, style = export.load_checkpoint(bundle / "student.pt")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x, 0.7), student(x, 0.7))
    meta = json.loads((bundle / "model.json").read_text())  # the style block comes from the bundle
    assert record == {} and style == {k: v for k, v in meta["style"].items() if isinstance(v, str)}


def test_distill_checkpoint_with_config_and_record_loads(tmp_path):
    cfg = {"widths": [16, 32], "res_hidden": 32}
    from muon_ad_ros.model.student import StudentConfig
    net = Student(StudentConfig(widths=(16, 32), res_hidden=32))
    path = tmp_path / "ckpt.pt"
    torch.save({"student": net.state_dict(), "config": cfg, "record": {"seed": 1}, "style": {"name": "x"}}, path)
    loaded, record, style = export.load_checkpoint(path)
    assert loaded.config.widths == (16, 32) and record == {"seed": 1} and style == {"name": "x"}


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        export.load_checkpoint(tmp_path / "nope.pt")


def test_export_command_writes_a_bundle(tmp_path, student, capsys):
    ckpt = tmp_path / "student.pt"
    torch.save(student.state_dict(), ckpt)
    rc = export.main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "b"), "--levels", "1.0", "0.4",
                      "--style-image", "mosaic"])
    assert rc == 0
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    assert [lv["retention"] for lv in meta["levels"]] == [1.0, 0.4]
    assert "generated" in meta["style"]["source"] and (tmp_path / "b" / "style.png").is_file()
    assert "student_r040.onnx" in capsys.readouterr().out
    assert meta["input"]["scale"] == 1.0


def test_export_records_the_input_scale_and_rejects_one_out_of_range(tmp_path, student, capsys):
    ckpt = tmp_path / "student.pt"
    torch.save(student.state_dict(), ckpt)
    assert export.main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "b"), "--levels", "1.0",
                        "--input-scale", "0.5"]) == 0
    assert json.loads((tmp_path / "b" / "model.json").read_text())["input"]["scale"] == 0.5
    with pytest.raises(SystemExit) as e:
        export.main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "c"), "--input-scale", "0.1"])
    assert e.value.code == 2 and "--input-scale: must be a number in [0.25, 1.0]" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_level_tag_and_bad_level():
    assert export.level_tag(1.0) == "r100" and export.level_tag(0.4) == "r040"
    with pytest.raises(ValueError, match="0.2"):
        export.level_tag(0.2)


def test_engine_request_maps_a_bundle_level_onto_the_shared_builder(bundle, tmp_path):
    onnx_path = bundle / "student_r040.onnx"
    req = te.engine_request(onnx_path, "fp16", (480, 640), 0.4, dla_core=0, cache_dir=tmp_path)
    assert req.onnx_path == str(onnx_path) and req.precision == "fp16" and req.dla_core == 0
    assert req.input_shapes == {export.INPUT_NAME: (1, 3, 480, 640)}   # static: the DLA needs it
    assert req.retention == 0.4 and req.cache_dir == str(tmp_path) and req.calibration is None
    assert te.engine_request(onnx_path).dla_core == -1   # no DLA core: GPU only
    with pytest.raises(ValueError, match="bf8"):
        te.engine_request(onnx_path, "bf8")
    with pytest.raises(ValueError, match="470x640"):
        te.engine_request(onnx_path, "fp16", (470, 640))


def test_int8_request_calibrates_on_the_bundled_photographs_as_the_model_sees_frames(bundle):
    req = te.engine_request(bundle / "student_r100.onnx", "int8", (96, 128))
    from muon_ad_ros.model.bundle import PHOTOS_DIR
    frames = list(req.calibration())
    assert len(frames) == len(te.calibration_files(str(PHOTOS_DIR))) >= 4 and req.calibration_id
    assert {f.shape for f in frames} == {(1, 3, 96, 128)} and {f.dtype for f in frames} == {np.dtype(np.float32)}
    assert 0.0 <= min(f.min() for f in frames) and max(f.max() for f in frames) <= 1.0
    # the same frames through the bundle's ONNX give a finite stylized frame: the input matches the model
    sess = ort.InferenceSession(req.onnx_path, providers=["CPUExecutionProvider"])
    assert np.isfinite(sess.run(None, {export.INPUT_NAME: frames[0]})[0]).all()


@pytest.mark.skipif(HAS_TRT, reason="checks the message when TensorRT is absent")
def test_export_cli_says_why_engines_are_skipped_without_tensorrt(student, tmp_path, capsys):
    ckpt = tmp_path / "student.pt"
    torch.save(student.state_dict(), ckpt)
    rc = export.main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "b"), "--levels", "1.0",
                      "--trt", "fp16", "--trt-shape", "96x128", "--engine-cache", str(tmp_path / "cache")])
    assert rc == 0 and "TensorRT engines skipped: " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        export.main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "b"), "--trt-shape", "480by640"])


@pytest.mark.skipif(not HAS_TRT, reason="no NVIDIA GPU / TensorRT on this machine")
def test_engine_is_built_once_and_cached(bundle, tmp_path):
    req = te.engine_request(bundle / "student_r100.onnx", "fp16", cache_dir=tmp_path)
    _, first = te.build_or_load(req)
    _, again = te.build_or_load(req)
    assert first.built and not again.built and first.path == again.path and first.retention == 1.0
    assert not first.dla_layers and first.engine_layers  # no DLA core requested: every layer on the GPU


@pytest.mark.skipif(not HAS_TRT, reason="no NVIDIA GPU / TensorRT on this machine")
def test_int8_engine_with_calibration_and_dla_report(bundle, tmp_path):
    import tensorrt as trt
    if trt.Builder(trt.Logger()).num_DLA_cores == 0:
        pytest.skip("this GPU has no DLA core")
    _, report = te.build_or_load(te.engine_request(bundle / "student_r040.onnx", "int8", retention=0.4,
                                                       dla_core=0, cache_dir=tmp_path))
    assert report.built and report.dla_layers and report.device == "DLA0 + GPU fallback"


def test_bundle_student_pt_loads_with_the_bundles_config(tmp_path):
    # student.pt is a bare state_dict: the padding comes from model.json, not the old-bundle default
    from muon_ad_ros.model.student import Student
    torch.manual_seed(0)
    net = Student().eval()
    export.export_bundle(net, tmp_path, (1.0,), torch.rand(1, 3, 64, 64), {"name": "t", "image": "mosaic"})
    loaded, _, _ = export.load_checkpoint(tmp_path / "student.pt")
    assert loaded.config.padding == "replicate"
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-6)


@pytest.mark.parametrize("half_width", [0, 16])
def test_bilinear_upsampling_exports_and_runs_at_other_sizes(tmp_path, half_width):
    from muon_ad_ros.model.student import Student, StudentConfig
    torch.manual_seed(0)
    net = Student(StudentConfig(upsample="bilinear", half_width=half_width)).eval()
    path = export.export_onnx(net, tmp_path / "b.onnx", 0.4)
    x = torch.rand(1, 3, 88, 136, generator=torch.Generator().manual_seed(5))
    assert export.onnx_max_error(path, net, x, 0.4) < 1e-4
    if half_width:
        # the sub-pixel shuffle exports as a ConvTranspose with a constant kernel (model/student.py
        # depth_to_space): ONNX Runtime's DepthToSpace took 1.74 ms of it at 640x480, this 0.37 ms
        ops = [n.op_type for n in onnx.load(str(path)).graph.node]
        assert ops.count("ConvTranspose") == 1 and "DepthToSpace" not in ops
