"""The TensorRT API check: the AST collector and the checker run everywhere (on source snippets, a
module-like object and the package itself); the tests against the real TensorRT releases need the
cached venvs of `make check-tensorrt` and are skipped without them."""
from __future__ import annotations

import json
import textwrap
import types

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from muon_ad_ros.bench import tensorrt_api as api
from muon_ad_ros.runtime import tensorrt_engine as te


def uses_of(tmp_path, source: str) -> dict:
    f = tmp_path / "mod.py"
    f.write_text(textwrap.dedent(source))
    return {api.dotted(p): e["optional"] for p, e in api.merge(api.collect([f])).items()}


def test_unguarded_use_is_required_and_probed_use_is_optional(tmp_path):
    found = uses_of(tmp_path, """
        import tensorrt as nv
        def f(config):
            config.set_flag(nv.BuilderFlag.TF32)
            if hasattr(nv.BuilderFlag, "FP16"):
                config.set_flag(nv.BuilderFlag.FP16)
            config.set_flag(nv.BuilderFlag.INT8)
    """)
    assert found["BuilderFlag.TF32"] is False and found["BuilderFlag.INT8"] is False
    assert found["BuilderFlag.FP16"] is True and found["BuilderFlag"] is False


def test_guards_through_variables_early_exits_getattr_try_and_boolean_tests(tmp_path):
    found = uses_of(tmp_path, """
        def f(trt):
            weak = hasattr(trt.BuilderFlag, "FP16")
            if not weak:
                x = trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED
            else:
                x = trt.BuilderFlag.FP16
            y = getattr(trt.BuilderFlag, "BF16", None)
            z = getattr(trt.BuilderFlag, "TF32")
            try:
                trt.BuilderFlag.FP8
            except AttributeError:
                pass
            try:
                trt.BuilderFlag.INT4
            except ValueError:
                pass
            ok = hasattr(trt, "IInt8EntropyCalibrator2") and trt.IInt8EntropyCalibrator2
            w = trt.DeviceType.DLA if hasattr(trt.DeviceType, "DLA") else trt.DeviceType.GPU
        def g(trt):
            if not hasattr(trt.BuilderFlag, "STRIP_PLAN"):
                raise RuntimeError("old")
            return trt.BuilderFlag.STRIP_PLAN
        def h(trt):
            return trt.BuilderFlag.STRIP_PLAN
    """)
    assert found["BuilderFlag.FP16"] is True
    # probed as FP16, but used without its own probe: required
    assert found["NetworkDefinitionCreationFlag.STRONGLY_TYPED"] is False
    assert found["BuilderFlag.BF16"] is True and found["BuilderFlag.TF32"] is False
    assert found["BuilderFlag.FP8"] is True and found["BuilderFlag.INT4"] is False
    assert found["IInt8EntropyCalibrator2"] is True
    assert found["DeviceType.DLA"] is True and found["DeviceType.GPU"] is False
    assert found["BuilderFlag.STRIP_PLAN"] is False   # h() uses it without the probe g() has


def test_values_are_followed_through_names_self_annotations_and_subclasses(tmp_path):
    found = uses_of(tmp_path, """
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import tensorrt
        def make(trt, logger) -> tensorrt.ICudaEngine:
            builder = trt.Builder(logger)
            network = builder.create_network(0)
            for i in range(network.num_layers):
                network.get_layer(i).type.name
            return trt.Runtime(logger).deserialize_cuda_engine(b"")
        class Runner:
            def __init__(self, engine: "tensorrt.ICudaEngine"):
                self.context = engine.create_execution_context()
            def run(self):
                self.context.execute_async_v3(0)
        def use(trt):
            engine = make(trt, None)
            engine.num_io_tensors
            class Cal(trt.IInt8EntropyCalibrator2):
                def get_batch(self, names):
                    return None
                def __init__(self):
                    super().__init__()
    """)
    for name in ("Builder().create_network().num_layers", "Builder().create_network().get_layer().type.name",
                 "Runtime().deserialize_cuda_engine", "ICudaEngine().create_execution_context().execute_async_v3",
                 "ICudaEngine().num_io_tensors", "IInt8EntropyCalibrator2().get_batch"):
        assert found[name] is False, name
    assert "IInt8EntropyCalibrator2().__init__" not in found


def test_the_package_modules_touching_tensorrt_are_all_walked():
    names = {p.relative_to(api.PACKAGE).as_posix() for p in api.trt_modules()}
    assert {"runtime/tensorrt_engine.py", "detect/yolo_trt.py", "runtime/style.py", "train/export.py"} <= names
    assert "model/student.py" not in names and "bench/tensorrt_api.py" not in names
    found = api.merge(api.collect())
    by_name = {api.dotted(p): e for p, e in found.items()}
    assert by_name["ICudaEngine().create_execution_context().execute_async_v3"]["optional"] is False
    assert by_name["Builder().create_network"]["optional"] is False
    for detected in ("BuilderFlag.FP16", "BuilderFlag.INT8", "IInt8EntropyCalibrator2",
                     "NetworkDefinitionCreationFlag.EXPLICIT_BATCH", "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
                     "Builder().create_builder_config().int8_calibrator"):
        assert by_name[detected]["optional"] is True, detected
    assert any(w.startswith("muon_ad_ros/runtime/style.py:") for e in found.values() for w in e["where"])


def _signature(doc: str):
    def f(*args):
        return None
    f.__doc__, f.__name__ = doc, doc.split("(")[0] or "fget"   # pybind11 names the function in its doc
    return f


def fake_release(drop: str = ""):
    """A module-like object with pybind11-style signatures (what the checker reads of a real release)."""
    class INetworkDefinition:
        num_layers = property(_signature("(arg0: tensorrt_bindings.tensorrt.INetworkDefinition) -> int"))

    class BuilderFlag:
        FP16, INT8 = object(), object()

    class Builder:
        create_network = _signature("create_network(self: tensorrt_bindings.tensorrt.Builder, flags: int = 0) "
                                    "-> tensorrt_bindings.tensorrt.INetworkDefinition")
    if drop:
        cls, attr = drop.split(".")
        delattr(locals()[cls], attr)
    return types.SimpleNamespace(__version__="0.test", Builder=Builder, BuilderFlag=BuilderFlag,
                                 INetworkDefinition=INetworkDefinition)


USES = [api.Use(("Builder", "()", "create_network", "()", "num_layers"), False, "a.py:1"),
        api.Use(("BuilderFlag", "FP16"), False, "a.py:2"),
        api.Use(("BuilderFlag", "INT8"), True, "a.py:3")]


def test_checker_passes_a_release_with_every_name_and_fails_on_a_missing_one():
    ok = api.check(fake_release(), USES)
    assert ok.ok and ok.present == ok.checked == 3
    gone = api.check(fake_release(drop="INetworkDefinition.num_layers"), USES)
    assert not gone.ok and [m["name"] for m in gone.missing] == ["Builder().create_network().num_layers"]
    assert gone.missing[0]["where"] == ["a.py:1"]
    detected = api.check(fake_release(drop="BuilderFlag.INT8"), USES)
    assert detected.ok and [m["name"] for m in detected.absent_optional] == ["BuilderFlag.INT8"]
    planted = api.check(fake_release(), USES + [api.Use(api.parse_dotted("BuilderFlag.NO_SUCH_FLAG"), False, "x")])
    assert not planted.ok and planted.missing[0]["name"] == "BuilderFlag.NO_SUCH_FLAG"


def test_checker_counts_steps_past_an_untyped_value_as_unresolved():
    res = api.check(fake_release(), [api.Use(("Builder", "()", "create_network", "()", "num_layers", "real"),
                                             False, "a.py:1")])
    assert res.ok and res.unresolved == ["Builder().create_network().num_layers.real"]
    assert api.parse_dotted("IBuilderConfig().set_flag") == ("IBuilderConfig", "()", "set_flag")


def fake_flags(*names):
    return types.SimpleNamespace(**{n: i for i, n in enumerate(names)})


def test_build_settings_without_precision_flags_or_strong_typing_is_unavailable():
    trt = types.SimpleNamespace(__version__="0.test", BuilderFlag=fake_flags("TF32"),
                                NetworkDefinitionCreationFlag=fake_flags("EXPLICIT_BATCH"))
    with pytest.raises(te.TensorRTUnavailable, match="neither precision flags nor strongly typed"):
        te.build_settings(trt, "fp16")
    no_calibrator = types.SimpleNamespace(__version__="0.test", BuilderFlag=fake_flags("FP16"),
                                          NetworkDefinitionCreationFlag=fake_flags("EXPLICIT_BATCH"))
    assert te.build_settings(no_calibrator, "int8").onnx_transform == "qdq"


def _model(tmp_path):
    from muon_ad_ros.detect.synthetic import conv_yolo_model
    path = str(tmp_path / "m.onnx")
    conv_yolo_model(path, size=64, classes=2, widths=(8, 8, 8, 8, 8), repeats=1)
    return path


def test_qdq_model_quantizes_symmetrically_and_stays_close_to_fp32(tmp_path):
    path = _model(tmp_path)
    rng = np.random.default_rng(0)
    batches = [rng.random((1, 3, 64, 64), np.float32) for _ in range(4)]
    qdq = te.qdq_model(open(path, "rb").read(), lambda: iter(batches))
    model = onnx.load_from_string(qdq)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 2 and ops.count("DequantizeLinear") >= 2
    zero_points = {n.input[2] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                   and len(n.input) > 2}
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert zero_points and all(not inits[z].any() for z in zero_points if z in inits)   # TensorRT: zero point 0
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    q = ort.InferenceSession(qdq, providers=["CPUExecutionProvider"])
    name = ref.get_inputs()[0].name
    a, b = ref.run(None, {name: batches[0]})[0], q.run(None, {name: batches[0]})[0]
    assert np.abs(a - b).max() <= 0.1 * np.abs(a).max() + 1e-3


def test_fp16_model_keeps_float32_inputs_and_outputs(tmp_path):
    path = _model(tmp_path)
    from muon_ad_ros.runtime.onnx import fp16_model
    model = onnx.load_from_string(fp16_model(open(path, "rb").read()))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)


# ----------------------------------------------------------------------------- against the real releases

def needs(version):
    return pytest.mark.skipif(not api.installed(version),
                              reason=f"TensorRT {version} venv absent: run `make check-tensorrt` (installs it)")


RELEASES = [pytest.param(v, marks=needs(v)) for v in api.RELEASES]


def in_release(version: str, code: str):
    proc = api.run_in_release(version, "import json, tensorrt_bindings as trt\n" + textwrap.dedent(code))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("version", RELEASES)
def test_release_has_every_required_name_and_fails_on_a_planted_one(version):
    r = in_release(version, """
        from muon_ad_ros.bench.tensorrt_api import _check_here
        print(json.dumps([_check_here([]), _check_here(["BuilderFlag.NO_SUCH_FLAG"])]))
    """)
    clean, planted = r
    assert clean["version"] == version and not clean["missing"] and clean["present"] > 50
    assert [m["name"] for m in planted["missing"]] == ["BuilderFlag.NO_SUCH_FLAG"]


SETTINGS = """
    from muon_ad_ros.runtime import tensorrt_engine as te
    out = {}
    for p in ("fp32", "fp16", "int8"):
        s = te.build_settings(trt, p)
        out[p] = {"strong": s.strongly_typed, "transform": s.onnx_transform, "implicit": s.implicit_int8,
                  "flags": [f.name for f in s.builder_flags], "mask": s.network_flags}
    out["explicit_batch"] = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) \\
        if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") else None
    print(json.dumps(out))
"""


@pytest.mark.parametrize("version", [pytest.param(v, marks=needs(v)) for v in api.RELEASES if v[0] in "89"]
                         + [pytest.param(v, marks=needs(v)) for v in api.RELEASES if v.startswith("10.")])
def test_8_and_10_build_with_precision_flags_and_the_implicit_calibrator(version):
    s = in_release(version, SETTINGS)
    assert s["fp32"] == {"strong": False, "transform": "", "implicit": False, "flags": [], "mask": s["explicit_batch"]}
    assert s["fp16"]["flags"] == ["FP16"] and not s["fp16"]["strong"] and not s["fp16"]["transform"]
    assert s["int8"]["flags"] == ["INT8", "FP16"] and s["int8"]["implicit"] and not s["int8"]["transform"]
    calib = in_release(version, """
        from muon_ad_ros.runtime import tensorrt_engine as te
        c = te.make_calibrator(trt, None, lambda: iter(()), "/nonexistent/calib")
        print(json.dumps([isinstance(c, trt.IInt8EntropyCalibrator2), c.get_batch_size(), c.get_batch(["x"]),
                          c.read_calibration_cache()]))
    """)
    assert calib == [True, 1, None, None]


@pytest.mark.parametrize("version", [pytest.param(v, marks=needs(v)) for v in api.RELEASES if v.startswith("11.")])
def test_11_builds_strongly_typed_with_fp16_cast_and_qdq_int8(version):
    s = in_release(version, SETTINGS)
    assert s["explicit_batch"] is None
    assert all(s[p]["strong"] and not s[p]["flags"] and not s[p]["implicit"] for p in ("fp32", "fp16", "int8"))
    assert [s[p]["transform"] for p in ("fp32", "fp16", "int8")] == ["", "fp16", "qdq"]
    err = in_release(version, """
        from muon_ad_ros.runtime import tensorrt_engine as te
        try:
            te.make_calibrator(trt, None, lambda: iter(()), "/nonexistent/calib")
        except te.TensorRTUnavailable as exc:
            print(json.dumps(str(exc)))
    """)
    assert "no INT8 calibrator" in err


@pytest.mark.parametrize("version", [pytest.param(v, marks=needs(v)) for v in list(api.RELEASES)[:1]])
def test_check_tensorrt_command_exits_1_on_a_planted_name(version, capsys):
    assert api.main(["--versions", version]) == 0
    assert api.main(["--versions", version, "--plant", "IBuilderConfig().no_such_method"]) == 1
    assert "required, missing: IBuilderConfig().no_such_method  (planted)" in capsys.readouterr().out
