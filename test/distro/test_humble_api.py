"""ROS 2 Humble without its binaries: every rclpy, launch and launch_ros name the package and its tests use, and
the graph's Fast DDS profile, against Humble's API as data (muon_ad_ros/bench/data/humble_api.json, made by
`python -m muon_ad_ros.bench.ros_api generate` from the humble branches); planted post-Humble uses fail it."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from muon_ad_ros import distro, graph
from muon_ad_ros.bench import ros_api

MIRRORS = Path("/work/.mirror")


@pytest.fixture(scope="module")
def data():
    return ros_api.load()


@pytest.fixture(scope="module")
def installed():
    return ros_api.Surface.from_installed()


def test_the_package_uses_only_names_humble_has(data, installed):
    result = ros_api.check(data, ros_api.package_sources(), installed)
    assert ros_api.ok(result), ros_api.summary(result)
    assert result["uses"] > 100, ros_api.summary(result)       # the collector reaches the package's rclpy code
    # the one post-Humble name, behind its Humble alternative
    assert [m["name"] for m in result["absent_optional"]] == ["rclpy.event_handler"], ros_api.summary(result)


PLANTED = {
    # the two uses that kept the package from starting on Humble
    "from rclpy.event_handler import SubscriptionEventCallbacks": "rclpy.event_handler",
    "from rclpy.node import Node\ndef f(node: Node):\n    return node.create_subscription(None, 't', print, 1)"
    ".get_publisher_count()": "rclpy.subscription.Subscription.get_publisher_count",
    # a keyword argument Humble's function does not take (rclpy.init(domain_id=) is Humble's)
    "import rclpy\nrclpy.init(domain=3)": "rclpy.init(domain=)",
    # launch_ros: a keyword argument through Node's **kwargs into ExecuteProcess/ExecuteLocal
    "from launch_ros.actions import Node\nNode(package='p', executable='e', respawn_max_retries=3)":
        "launch_ros.actions.node.Node(respawn_max_retries=)",
    # a method of a newer Node
    "from rclpy.node import Node\nclass N(Node):\n    def go(self):\n        self.count_clients('/s')":
        "rclpy.node.Node.count_clients",
}


@pytest.mark.parametrize("code", list(PLANTED))
def test_a_planted_post_humble_use_fails_the_check(data, installed, code):
    result = ros_api.check(data, {**ros_api.package_sources(), "planted.py": code + "\n"}, installed)
    assert not ros_api.ok(result)
    assert [m["name"] for m in result["missing"]] == [PLANTED[code]], ros_api.summary(result)
    assert result["missing"][0]["where"].startswith("planted.py:")


def test_a_post_humble_method_on_a_value_of_unknown_type_fails_by_name(data, installed):
    if "get_publisher_count" not in installed.method_names():
        pytest.skip("the installed rclpy is Humble's: it has no newer method to reach by name")
    code = "import rclpy\ndef matched(subscription):\n    return subscription.get_publisher_count()\n"
    result = ros_api.check(data, {**ros_api.package_sources(), "planted.py": code}, installed)
    assert [m["name"] for m in result["by_name"]] == ["get_publisher_count"], ros_api.summary(result)
    assert not ros_api.ok(result)


def test_feature_detected_uses_are_allowed(data, installed):
    code = ("try:\n    from rclpy.event_handler import PublisherEventCallbacks\nexcept ImportError:\n"
            "    from rclpy.qos_event import PublisherEventCallbacks\n")
    result = ros_api.check(data, {"planted.py": code}, installed)
    assert ros_api.ok(result) and [m["name"] for m in result["absent_optional"]] == ["rclpy.event_handler"]


def test_the_profile_and_its_variable_fit_fast_dds_2_6(data, tmp_path):
    schema, parser = data["fastdds_schema"], data["fastdds_parser_names"]
    assert ros_api.check_profile(schema, graph.transport_profile(), parser) == []
    # the graph sets the variable a Fast DDS with 2.6's names reads
    assert ros_api.fastdds_profile_variable(data["fastdds_env"]) == (distro.LEGACY_PROFILE_VAR,)
    assert distro.LEGACY_PROFILE_VAR in data["fastdds_env"] and distro.PROFILE_VAR not in data["fastdds_env"]
    text = graph.transport_profile().read_text()
    planted = tmp_path / "planted.xml"
    planted.write_text(text.replace("<type>SHM</type>", "<type>SHM</type><no_such_setting>1</no_such_setting>")
                       .replace("<useBuiltinTransports>false</useBuiltinTransports>",
                                "<builtinTransports>HUGE_DATA</builtinTransports>")
                       .replace('is_default_profile="true"', 'is_default_profile="true" colour="blue"'))
    problems = ros_api.check_profile(schema, planted, parser)
    assert any("no_such_setting: no such element" in p for p in problems), problems
    assert any("'HUGE_DATA' is not one of" in p for p in problems), problems
    assert any("@colour: no such attribute" in p for p in problems), problems
    # XML forbids "--" inside a comment
    planted.write_text(text.replace("<dds", "<!-- docker run --shm-size=512m -->\n<dds", 1))
    assert "not well-formed XML" in ros_api.check_profile(schema, planted, parser)[0]


@pytest.mark.skipif(not (MIRRORS / "ros2+rclpy" / "repo").is_dir(),
                    reason="the humble branches' git mirrors are not on this machine (the search tool's fetch makes "
                           "them: ros2/rclpy, ros2/launch, ros2/launch_ros, eProsima/Fast-DDS)")
def test_the_data_is_what_its_generator_makes_from_the_humble_branches(data):
    fresh = json.loads(json.dumps(ros_api.generate(MIRRORS)))
    for repo, src in fresh["sources"].items():
        assert data["sources"][repo]["commit"] == src["commit"], \
            f"{repo}@{src['ref']} moved to {src['commit']}: run `python -m muon_ad_ros.bench.ros_api generate`"
    assert fresh == data


LOG_METHODS = {"debug", "info", "warn", "warning", "error", "fatal"}


def test_no_log_call_site_changes_severity():
    """rclpy keys a logger's severity by call site and raises ValueError at a site's second severity: a logger
    method chosen at run time (`log = logger.warning if x else logger.info; log(...)`) must not exist."""
    found = []
    for path, source in ros_api.package_sources().items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.IfExp) and all(
                    isinstance(b, ast.Attribute) and b.attr in LOG_METHODS for b in (node.body, node.orelse)) \
                    and node.body.attr != node.orelse.attr:
                found.append(f"{path}:{node.lineno}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                    and len(node.args) >= 2 and not isinstance(node.args[1], ast.Constant) \
                    and "logger" in ast.unparse(node.args[0]).lower():
                found.append(f"{path}:{node.lineno}")
    assert not found, f"logger methods picked at run time: {found}"


def _python310() -> str | None:
    import glob
    import os
    import shutil
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(f"{root}/versions/3.10*/bin/python3.10"))
    if found:
        return found[0]
    path = shutil.which("python3.10")       # pyenv's shim is on PATH even where it cannot run 3.10
    return path if path and "/shims/" not in path else None


@pytest.mark.skipif(_python310() is None, reason="no Python 3.10 interpreter here (Humble's, Ubuntu 22.04)")
def test_every_source_compiles_on_python_3_10():
    """Humble runs on Ubuntu 22.04's Python 3.10: no syntax of a later Python."""
    import subprocess
    code = ("import sys\nbad = []\nfor p in sys.argv[1:]:\n    try:\n        compile(open(p).read(), p, 'exec')\n"
            "    except SyntaxError as e:\n        bad.append(f'{p}: {e}')\nprint('\\n'.join(bad))\nsys.exit(1 if bad else 0)\n")
    repo = ros_api.REPO
    files = [str(repo / p) for p in ros_api.package_sources()]
    out = subprocess.run([_python310(), "-c", code, *files], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
