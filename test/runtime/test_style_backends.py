"""Style backends on a tiny bundle exported from an untrained student (real ONNX Runtime and torch)."""
import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch

from muon_ad_ros.train import export
from muon_ad_ros.runtime.style import BackendUnavailable, ModelError, PruningInfo, open_style_backend

HAS_TRT = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


@pytest.fixture(scope="module")
def student():
    from bundle_helpers import context_student
    return context_student()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, student):
    out = tmp_path_factory.mktemp("bundle")
    calib = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    export.export_bundle(student, out, (1.0, 0.7, 0.4), calib, {"name": "test"}, {"seed": 0}, fp16=True)
    return out


@pytest.fixture()
def frame():
    return np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)


def torch_reference(student, rgb, level):
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = student(x, level)
    return (y[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


@pytest.mark.parametrize("kind", ["onnxruntime", "torch"])
def test_backend_output_matches_the_student(bundle, student, frame, kind):
    be = open_style_backend(kind, bundle, threads=1)
    assert be.levels == (0.4, 0.7, 1.0) and be.name == kind and be.device == "cpu"
    for level in be.levels:
        out = be.infer(frame, level)
        assert out.shape == frame.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - torch_reference(student, frame, level)).max() <= 1


@pytest.mark.parametrize("kind", ["onnxruntime", "torch"])
def test_a_batch_of_frames_gives_each_frame_its_own_output(bundle, frame, kind):
    """Two streams' frames in one network call (the bundle's ONNX was exported with a batch of one: the backend
    opens its batch size): every level's outputs equal one call per frame, including frames that are padded."""
    be = open_style_backend(kind, bundle, threads=1, **({"batch": True} if kind == "onnxruntime" else {}))
    assert be.batch
    other = np.ascontiguousarray(frame[::-1, ::-1])
    odd = np.random.default_rng(1).integers(0, 256, (2, 75, 101, 3), dtype=np.uint8)
    for level in be.levels:
        for pair in ((frame, other), tuple(odd)):
            one = [be.infer(f, level).copy() for f in pair]
            both = be.infer_many(list(pair), level)
            assert len(both) == 2 and both[0] is not both[1]
            for single, batched in zip(one, both):
                assert np.array_equal(single, batched), (kind, level, np.abs(single.astype(int) - batched).max())
    with pytest.raises(ValueError, match="share a size"):
        be.infer_many([frame, odd[0]], 1.0)
    if kind == "onnxruntime":       # the node's default: batch-1 sessions, off the onnx import
        single = open_style_backend(kind, bundle, threads=1)
        assert not single.batch
        with pytest.raises(ValueError, match="one frame per call"):
            single.infer_many([frame, other], 1.0)


def test_shipped_bundles_batch_to_the_same_output(frame):
    """The shipped bundles (batch size fixed at 1 in their ONNX) at their input scales, every level."""
    from muon_ad_ros.model.bundle import default_model_dir
    models = default_model_dir().parent
    rgb = np.random.default_rng(2).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for name in ("starry_night", "mosaic", "ihc"):
        be = open_style_backend("onnxruntime", models / name, threads=1, batch=True)
        for level in be.levels:
            one = [be.infer(f, level).copy() for f in (rgb, rgb[::-1].copy())]
            both = be.infer_many([rgb, rgb[::-1].copy()], level)
            assert all(np.array_equal(a, b) for a, b in zip(one, both)), (name, level)


def test_retention_picks_the_nearest_level_below(bundle, student, frame):
    be = open_style_backend("onnxruntime", bundle)
    assert [be.level_for(r) for r in (1.0, 0.99, 0.7, 0.55, 0.4, 0.2)] == [1.0, 0.7, 0.7, 0.4, 0.4, 0.4]
    out = be.infer(frame, 0.55).copy()
    assert np.abs(out.astype(int) - torch_reference(student, frame, 0.4)).max() <= 1
    with pytest.raises(ValueError, match="1.5"):
        be.infer(frame, 1.5)


def test_output_buffer_is_reused_per_shape(bundle, frame):
    be = open_style_backend("onnxruntime", bundle)
    a = be.infer(frame, 1.0)
    b = be.infer(frame[::-1].copy(), 0.4)
    assert a is b  # the same pre-allocated buffer
    c = be.infer(np.zeros((64, 64, 3), np.uint8), 1.0)
    assert c is not a and c.shape == (64, 64, 3)


def test_frames_that_are_not_multiples_of_8_are_padded_and_cropped(bundle, student):
    be = open_style_backend("onnxruntime", bundle)
    rgb = np.random.default_rng(1).integers(0, 256, (70, 101, 3), dtype=np.uint8)
    out = be.infer(rgb, 1.0)
    assert out.shape == (70, 101, 3)
    # the same as the student on the edge-replicated 72x104 frame, cropped back
    padded = np.pad(rgb, ((0, 2), (0, 3), (0, 0)), mode="edge")
    want = torch_reference(student, padded, 1.0)[:70, :101]
    assert np.abs(out.astype(int) - want).max() <= 1


def with_input_scale(bundle, tmp_path, scale):
    b = copy_bundle(bundle, tmp_path)
    meta = json.loads((b / "model.json").read_text())
    meta["input"]["scale"] = scale
    (b / "model.json").write_text(json.dumps(meta))
    return b


@pytest.mark.parametrize("kind", ["onnxruntime", "torch"])
def test_input_scale_runs_the_network_on_the_resized_frame(bundle, student, tmp_path, kind):
    """The bundle's input scale times the call's scale (the node's resolution_scale) sets the network's size;
    the output comes back at the frame's size."""
    import cv2
    rgb = np.random.default_rng(2).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    be = open_style_backend(kind, with_input_scale(bundle, tmp_path, 0.5), threads=1)
    assert be.scale == 0.5
    # 0.25 x 240 = 60 rounds to 64, the least; below half size area averaging replaces bilinear
    for call_scale, size, interpolation in ((1.0, (160, 120), cv2.INTER_LINEAR),
                                            (0.5, (80, 64), cv2.INTER_AREA)):
        out = be.infer(rgb, 0.7, call_scale)
        small = cv2.resize(rgb, size, interpolation=interpolation)
        want = cv2.resize(torch_reference(student, small, 0.7), (320, 240), interpolation=cv2.INTER_LINEAR)
        assert out.shape == rgb.shape and np.abs(out.astype(int) - want).max() <= 1
    full = open_style_backend(kind, bundle, threads=1).infer(rgb, 0.7)
    assert np.abs(full.astype(int) - torch_reference(student, rgb, 0.7)).mean() < 1
    assert np.abs(full.astype(int) - out).mean() > 1     # the scale changes what runs


def test_fixed_shape_backends_resize_frames_to_their_size_and_refuse_another_resolution_scale(bundle, student):
    """TensorRT engines take one shape, built for the frame size frame_hw (set by its __init__; no TensorRT
    here, so the ONNX Runtime backend stands in): a frame of any other size runs resized to it and comes back
    at its own size, and the style node asks scale_refusal before it accepts a resolution_scale."""
    import cv2
    be = open_style_backend("onnxruntime", bundle)
    assert be.frame_hw is None and be.scale_refusal(0.5) is None
    be.frame_hw = (96, 128)
    assert be.scale_refusal(1.0) is None
    assert "resolution_scale 0.5 needs another input shape" in be.scale_refusal(0.5)
    rgb = np.random.default_rng(3).integers(0, 256, (72, 160, 3), dtype=np.uint8)   # another size and aspect
    out = be.infer(rgb, 0.7)
    assert out.shape == rgb.shape and list(be._frames) == [(1, 96, 128)]   # (batch, network height, width)
    small = cv2.resize(rgb, (128, 96), interpolation=cv2.INTER_LINEAR)
    want = cv2.resize(torch_reference(student, small, 0.7), (160, 72), interpolation=cv2.INTER_LINEAR)
    assert np.abs(out.astype(int) - want).max() <= 1


@pytest.mark.parametrize("scale", [0.1, 1.5, "half", None, True])
def test_bad_input_scale_in_model_json_is_named(bundle, tmp_path, scale):
    with pytest.raises(ModelError, match=r"input.scale .*\[0.25, 1.0\]"):
        open_style_backend("onnxruntime", with_input_scale(bundle, tmp_path, scale))


@pytest.mark.parametrize("bad", [np.zeros((64, 64), np.uint8), np.zeros((64, 64, 3), np.float32),
                                 np.zeros((64, 64, 4), np.uint8)])
def test_bad_frames_are_rejected_naming_them(bundle, bad):
    be = open_style_backend("onnxruntime", bundle)
    with pytest.raises(ValueError, match=str(bad.shape).replace("(", r"\(").replace(")", r"\)")):
        be.infer(bad, 1.0)


def test_fp16_precision_runs_the_fp16_models(bundle, frame):
    be32 = open_style_backend("onnxruntime", bundle)
    be16 = open_style_backend("onnxruntime", bundle, precision="fp16")
    assert be16.precision == "fp16"
    a, b = be32.infer(frame, 1.0).astype(int), be16.infer(frame, 1.0).astype(int)
    assert np.abs(a - b).max() <= 6


def test_pruning_state_comes_from_model_json(bundle):
    be = open_style_backend("onnxruntime", bundle)
    low = be.pruning_state(0.5)
    assert isinstance(low, PruningInfo) and low.level == 0.4
    assert low.context_groups == [8, 8]
    assert 0 < low.flops_fraction < 0.45 and all(0 < r < 1 for r in low.retention_per_stage)
    assert be.pruning_state(1.0).context_groups == [16, 16]


def test_bundle_written_with_attention_blocks_still_runs(bundle, tmp_path, frame):
    """model.json levels of attention-block bundles name the counts attention_heads (with the gate's fields);
    their student.pt has attn.* keys with query and key weights: both backends take them."""
    import json
    import shutil
    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    meta = json.loads((old / "model.json").read_text())
    for lv in meta["levels"]:
        lv["attention_heads"] = lv.pop("context_groups")
        lv["kept_attention_layers"], lv["attention_entropy"] = [0, 1], [4.2, 4.2]
    cfg = meta["student_config"]
    for new, was in (("context_blocks", "attention_blocks"), ("context_groups", "heads"),
                     ("group_width", "head_dim"), ("min_groups", "min_heads")):
        cfg[was] = cfg.pop(new)
    cfg.update(query_pool=2, key_pool=4)
    (old / "model.json").write_text(json.dumps(meta))
    state = torch.load(old / "student.pt", weights_only=True)
    state = {k.replace("context.", "attn."): v for k, v in state.items()}
    for i in range(2):
        state[f"attn.{i}.q.weight"] = state[f"attn.{i}.k.weight"] = torch.zeros(128, 64, 1, 1)
        state[f"attn.{i}.q.bias"] = state[f"attn.{i}.k.bias"] = torch.zeros(128)
        state[f"attn.{i}.keep_gate"] = torch.ones((), dtype=torch.bool)
    torch.save(state, old / "student.pt")
    for kind in ("onnxruntime", "torch"):
        be = open_style_backend(kind, old, threads=1)
        assert be.pruning_state(0.4).context_groups == [8, 8]
        np.testing.assert_array_equal(be.infer(frame, 1.0), open_style_backend(kind, bundle, threads=1).infer(frame, 1.0))


def test_missing_model_directory_and_model_json(tmp_path):
    with pytest.raises(ModelError, match="nowhere"):
        open_style_backend("onnxruntime", tmp_path / "nowhere")
    with pytest.raises(ModelError, match="model.json"):
        open_style_backend("onnxruntime", tmp_path)


def copy_bundle(bundle, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(bundle, dst)
    return dst


def test_corrupt_model_json_is_named(bundle, tmp_path):
    b = copy_bundle(bundle, tmp_path)
    (b / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="model.json.*JSON"):
        open_style_backend("onnxruntime", b)


def test_missing_onnx_file_is_named(bundle, tmp_path):
    b = copy_bundle(bundle, tmp_path)
    (b / "student_r070.onnx").unlink()
    with pytest.raises(ModelError, match="student_r070.onnx"):
        open_style_backend("onnxruntime", b)


def test_corrupt_onnx_file_is_named(bundle, tmp_path):
    b = copy_bundle(bundle, tmp_path)
    (b / "student_r040.onnx").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelError, match="student_r040.onnx.*cannot be loaded"):
        open_style_backend("onnxruntime", b)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_wrong_shaped_onnx_is_named(bundle, tmp_path):
    b = copy_bundle(bundle, tmp_path)

    class Grey(torch.nn.Module):
        def forward(self, x):
            return x.mean(1, keepdim=True)

    torch.onnx.export(Grey(), (torch.rand(1, 3, 64, 64),), str(b / "student_r100.onnx"), dynamo=False,
                      input_names=["image"], output_names=["stylized"])
    with pytest.raises(ModelError, match="student_r100.onnx.*output of shape"):
        open_style_backend("onnxruntime", b)


def test_missing_fp16_models_are_named(bundle, tmp_path):
    b = copy_bundle(bundle, tmp_path)
    meta = json.loads((b / "model.json").read_text())
    for lv in meta["levels"]:
        lv.pop("onnx_fp16")
    (b / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="no fp16 model"):
        open_style_backend("onnxruntime", b, precision="fp16")


def test_corrupt_and_mismatched_torch_weights_are_named(bundle, tmp_path):
    b = copy_bundle(bundle, tmp_path)
    (b / "student.pt").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="student.pt.*not a loadable"):
        open_style_backend("torch", b)
    torch.save({"stem.weight": torch.zeros(1)}, b / "student.pt")
    with pytest.raises(ModelError, match="student.pt.*do not fit"):
        open_style_backend("torch", b)


def test_unknown_kind_and_precision(bundle):
    with pytest.raises(ValueError, match="cuda"):
        open_style_backend("cuda", bundle)
    with pytest.raises(ValueError, match="int4"):
        open_style_backend("onnxruntime", bundle, precision="int4")


@pytest.mark.skipif(HAS_TRT, reason="checks the message when TensorRT is absent")
def test_tensorrt_unavailable_says_why(bundle):
    with pytest.raises(BackendUnavailable, match="TensorRT|CUDA"):
        open_style_backend("tensorrt", bundle)


@pytest.mark.skipif(not HAS_TRT, reason="no NVIDIA GPU / TensorRT on this machine")
def test_tensorrt_backend_matches_onnxruntime(bundle, tmp_path):
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    ref = open_style_backend("onnxruntime", bundle).infer(frame, 1.0).astype(int)
    be = open_style_backend("tensorrt", bundle, precision="fp16", cache_dir=tmp_path)
    assert np.abs(be.infer(frame, 1.0).astype(int) - ref).max() <= 4


def test_default_model_is_the_bundle_models_default_names_and_it_loads():
    from muon_ad_ros.model import bundle
    named = (bundle.MODELS_ROOT / "DEFAULT").read_text().strip()
    assert bundle.default_model_dir() == bundle.MODELS_ROOT / named
    backend = open_style_backend("onnxruntime", bundle.default_model_dir(), threads=1)
    out = backend.infer(np.zeros((64, 96, 3), np.uint8), 0.4)
    assert out.shape == (64, 96, 3) and out.dtype == np.uint8
    backend.close()


def test_engine_size_is_the_input_shape_a_frame_size_runs_at():
    """TensorRT engines (and `muon-ad export --trt`) are built for what infer hands the network."""
    from muon_ad_ros.model.bundle import engine_size
    assert engine_size(480, 640, 0.75) == (360, 480)
    assert engine_size(250, 330, 1.0) == (256, 336)       # padded up to multiples of 8
    assert engine_size(250, 330, 0.75) == (184, 248)      # resized to multiples of 8, no padding
