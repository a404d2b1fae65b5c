"""The graph description, the parameter declarations, config/edge.yaml and the launch file agree."""
import ast
from pathlib import Path

import pytest
import yaml

from muon_ad_ros import config_gen, graph
from muon_ad_ros.params import NODE_KINDS, Param, node_params, validate_all
from muon_ad_ros.launcher.processes import node_command, params_yaml

ROOT = Path(__file__).resolve().parents[2]
ALL_PARAMS = [(kind, p) for kind in NODE_KINDS for p in node_params(kind)[0]]


def test_default_graph_has_every_node_once_with_valid_settings():
    specs = graph.edge_graph(("realsense", "csi"))
    assert sorted(s.kind for s in specs) == sorted(NODE_KINDS)
    for s in specs:
        assert validate_all(s.kind, s.parameters) is None, s


def test_style_and_detection_read_the_camera_and_namespace_applies():
    specs = {s.name: s for s in graph.edge_graph(("realsense",), namespace="robot1")}
    assert dict(specs["style_transfer"].remaps)["image"] == "/robot1/camera/color/image_raw"
    assert dict(specs["detection"].remaps)["image"] == "/robot1/camera/color/image_raw"
    assert specs["realsense_camera"].fqn == "/robot1/camera/realsense_camera"


def test_two_cameras_both_go_into_the_style_node():
    specs = {s.name: s for s in graph.edge_graph(("realsense", "csi"), namespace="r1")}
    style = specs["style_transfer"]
    assert style.parameters["input_topics"] == ["image", "image_1"]
    assert dict(style.remaps) == {"image": "/r1/camera/color/image_raw", "image_1": "/r1/csi/image_raw"}
    assert dict(specs["detection"].remaps)["image"] == "/r1/camera/color/image_raw"   # detection: first camera


def test_existing_topics_as_two_style_inputs():
    style = {s.name: s for s in graph.edge_graph((), style_input="/a/image", style_input_2="/b/image")}["style_transfer"]
    assert style.parameters["input_topics"] == ["image", "image_1"]
    assert dict(style.remaps) == {"image": "/a/image", "image_1": "/b/image"}
    one = {s.name: s for s in graph.edge_graph((), style_input="/a/image")}["style_transfer"]
    assert "input_topics" not in one.parameters
    one = {s.name: s for s in graph.edge_graph(("csi",))}
    assert "input_topics" not in one["style_transfer"].parameters
    assert dict(one["style_transfer"].remaps) == {"image": "/csi/image_raw"}


def test_existing_camera_topic_is_accepted_by_remapping():
    specs = {s.name: s for s in graph.edge_graph((), style_input="/camera/camera/color/image_raw")}
    assert "realsense_camera" not in specs
    assert dict(specs["style_transfer"].remaps)["image"] == "/camera/camera/color/image_raw"


def test_unknown_camera_is_refused():
    with pytest.raises(ValueError, match="unknown camera"):
        graph.edge_graph(("kinect",))


def test_config_yaml_is_generated_from_the_declarations():
    text = (ROOT / "config" / "edge.yaml").read_text()
    assert text == config_gen.render(), "run `python -m muon_ad_ros.config_gen`"
    data = yaml.safe_load(text)
    for kind in NODE_KINDS:
        params, _ = node_params(kind)
        assert data[f"/**/{kind}"]["ros__parameters"] == {p.name: p.default for p in params}


def test_parameter_page_is_current():
    text = (ROOT / "docs" / "parameters.md").read_text()
    assert text == config_gen.parameters_page(), "run `python -m muon_ad_ros.config_gen`"


def test_every_parameter_has_a_description_and_a_valid_default():
    for kind, p in ALL_PARAMS:
        assert p.description.strip(), (kind, p.name)
        assert p.validate(p.default) is None, (kind, p.name)


def _bad_values(p: Param):
    bad = []
    bad.append(5 if p.type in (list, str) else ["a", "list"])   # wrong type
    if p.min is not None:
        bad.append(p.type(p.min) - (1 if p.type is int else 0.5))
    if p.max is not None:
        bad.append(p.type(p.max) + (1 if p.type is int else 0.5))
    if p.choices and p.type is str:
        bad.append("not-a-choice")
    assert bad, p
    return bad


@pytest.mark.parametrize("kind,param", ALL_PARAMS, ids=[f"{k}.{p.name}" for k, p in ALL_PARAMS])
def test_each_parameter_rejects_wrong_type_and_out_of_range(kind, param):
    for value in _bad_values(param):
        reason = param.validate(value)
        assert reason and param.name in reason, (value, reason)


def test_inconsistent_combinations_are_rejected_with_a_reason():
    assert "retention_min" in validate_all("controller", {"retention_min": 0.9, "retention_max": 0.5})
    assert "depth_near_m" in validate_all("controller", {"depth_near_m": 5.0, "depth_far_m": 4.0})
    assert "tensorrt" in validate_all("style_transfer", {"precision": "int8"})
    assert "dla_core needs backend tensorrt" in validate_all("style_transfer", {"dla_core": 0})
    assert "fp32 cannot use dla_core" in validate_all("style_transfer", {"backend": "tensorrt", "dla_core": 0})
    assert validate_all("style_transfer", {"backend": "tensorrt", "dla_core": 0, "precision": "fp16"}) is None


def test_tensorrt_style_engines_are_built_for_the_cameras_frame_size():
    style = next(s for s in graph.edge_graph(("realsense",), style_backend="tensorrt", width=1280, height=720)
                 if s.name == "style_transfer")
    assert (style.parameters["engine_width"], style.parameters["engine_height"]) == (1280, 720)


def test_runner_command_matches_ros2_run_conventions(tmp_path):
    spec = graph.edge_graph(("realsense",), namespace="r1")[1]
    cmd = node_command(spec, "p.yaml")
    assert cmd[1:3] == ["-m", "muon_ad_ros.nodes.style_transfer"]
    assert "__ns:=/r1" in cmd and "image:=/r1/camera/color/image_raw" in cmd
    params = yaml.safe_load(params_yaml(spec))["/r1/style_transfer"]["ros__parameters"]
    assert params["retention"] == 1.0 and params["sched_priority"] == graph.STYLE_PRIORITY


def test_launch_file_declares_the_runner_arguments_and_is_valid_python():
    src = (ROOT / "launch" / "edge.launch.py").read_text()
    tree = ast.parse(src)
    args = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ARGS")
    keys = {k.value for k in args.value.keys}
    assert {"cameras", "recording", "style_model", "style_backend", "style_priority", "detection_backend",
            "detection_rate",
            "controller_mode", "namespace", "params_file"} <= keys


def test_cmake_installs_every_node_executable():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for kind in NODE_KINDS:
        assert f"scripts/{kind}" in cmake
        assert (ROOT / "scripts" / kind).is_file()


def test_detection_rate_reaches_the_detection_node_and_is_validated():
    specs = {s.name: s for s in graph.edge_graph(("realsense",), detection_rate=8.0)}
    assert specs["detection"].parameters["rate_limit"] == 8.0
    default = {s.name: s for s in graph.edge_graph(("realsense",))}
    assert default["detection"].parameters["rate_limit"] == graph.DETECTION_RATE
    assert validate_all("detection", specs["detection"].parameters) is None
    # the controller holds that rate while its loop has not lowered it (it used to push 0: unlimited)
    assert specs["controller"].parameters["detection_rate_max"] == 8.0
    assert default["controller"].parameters["detection_rate_max"] == graph.DETECTION_RATE
    # the nodes' own defaults (config/edge.yaml) are the graph's rate
    from muon_ad_ros.params import node_params
    assert {p.name: p.default for p in node_params("detection")[0]}["rate_limit"] == graph.DETECTION_RATE
    assert {p.name: p.default for p in node_params("controller")[0]}["detection_rate_max"] == graph.DETECTION_RATE


def test_profile_summary_ranks_self_and_inclusive_time(tmp_path):
    from muon_ad_ros.bench.graph import summarize_profile
    raw = tmp_path / "p.txt"
    raw.write_text("<module> (/a/node.py:10);_loop (/a/common.py:5);"
                   "run (/x/onnxruntime_inference_collection.py:220) 60\n"
                   "<module> (/a/node.py:10);_loop (/a/common.py:5);to_msg (/a/common.py:90) 30\n"
                   "<module> (/a/node.py:10);spin (/r/executors.py:300) 10\n")
    prof = summarize_profile(raw)
    assert prof["samples"] == 100
    assert prof["self"][0] == {"function": "run (onnxruntime_inference_collection.py)", "pct": 60.0}
    incl = {e["function"]: e["pct"] for e in prof["inclusive"]}
    assert incl["<module> (node.py)"] == 100.0 and incl["_loop (common.py)"] == 90.0


def test_launch_file_sets_the_transport_profile_unless_the_shell_names_one():
    src = (ROOT / "launch" / "edge.launch.py").read_text()
    assert "EnvironmentVariable(k, default_value=v)" in src and "graph.transport_env()" in src


def test_bench_graph_reports_a_failed_probe_and_goes_on(tmp_path):
    from muon_ad_ros.bench.graph import safe_probe, sustainable, to_markdown
    from muon_ad_ros.launcher.demo import Collector
    col = Collector("", raw_topic="/bench_graph_test/image")
    try:
        # the player cannot read its frames: the probe fails with a reason instead of raising
        r = safe_probe(30.0, col, str(tmp_path / "missing.npy"), 1.0, {}, 1)
    finally:
        col.close()
    assert r["input_hz"] == 30.0 and "player exited" in r["error"], r
    assert not sustainable(r)
    md = to_markdown({"machine": {"cpu": "x", "cores": 2, "python": "3"}, "command": "c", "fixed_rates": [r],
                      "search": [], "max_sustainable_hz": 0.0, "probe_seconds": 1.0, "peak_graph_rss_mb": 0})
    assert "probe failed: RuntimeError: the player exited" in md
    # two streams: FPS, missed and p99 as stream 1 / stream 2, and both must keep up to be sustainable
    ok = {"input_hz": 30.0, "stylized_fps": 29.9, "missed_frames": 1, "missed_pct": 0.2, "jitter_ms": 1.0,
          "latency_ms": {"p50": 30, "p90": 40, "p99": 50, "max": 60}, "detection_fps": 10.0, "levels_pct": {"1": 100.0},
          "transport": {"received_pct": 100.0, "latency_ms": {"p50": 3, "p99": 9}}, "cpu_pct": {}, "rss_mb": {}}
    two = {**ok, "stream_2": {"stylized_fps": 20.0, "missed_pct": 33.0, "latency_ms": {"p50": 40, "p90": 50, "p99": 70}}}
    assert sustainable(ok) and not sustainable(two)
    md = to_markdown({"machine": {"cpu": "x", "cores": 2, "python": "3"}, "command": "c", "fixed_rates": [two],
                      "search": [], "max_sustainable_hz": 0.0, "probe_seconds": 1.0, "peak_graph_rss_mb": 0})
    assert "| 29.9 / 20.0 | 1 (0.2 / 33.0 %) |" in md and "/ 50 / 70 /" in md


def test_rviz_config_follows_namespace_and_camera():
    import yaml as _yaml
    plain = _yaml.safe_load(graph.rviz_config())
    cfg = _yaml.safe_load(graph.rviz_config("robot1", ("csi",)))
    assert plain["Visualization Manager"]["Global Options"]["Fixed Frame"] == "base_link"   # parent of every camera
    topics = [d["Topic"]["Value"] for d in cfg["Visualization Manager"]["Displays"] if "Topic" in d]
    assert topics == ["/robot1/csi/image_raw", "/robot1/stylized/image_raw", "/robot1/detections/image_annotated",
                      "/robot1/detections/markers"]
    assert graph.rviz_config() == graph.config_file("edge.rviz").read_text()
    other = graph.rviz_config("", (), style_input="/camera/camera/color/image_raw")
    assert "Value: /camera/camera/color/image_raw\n" in other


def test_launch_file_starts_rviz_only_when_asked_and_installed():
    src = (ROOT / "launch" / "edge.launch.py").read_text()
    assert '"rviz": ("false"' in src and "PackageNotFoundError" in src and "graph.rviz_config(" in src
