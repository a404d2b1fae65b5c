"""muon-ad bench discovery on one trial per arm: every subscription is timed, the shipped profile carries
the discovery settings and the fastdds_defaults arm really runs without them."""
import os
import subprocess
import sys

import pytest

from muon_ad_ros import graph
from muon_ad_ros.bench.discovery import child_result, markdown, run, without_discovery_settings


def test_fastdds_defaults_arm_drops_only_the_discovery_settings(tmp_path):
    shipped = graph.transport_profile().read_text()
    assert "<initialAnnouncements>" in shipped and "<leaseAnnouncement>" in shipped
    stripped = without_discovery_settings(graph.transport_profile(), tmp_path).read_text()
    assert "<initialAnnouncements>" not in stripped and "<leaseAnnouncement>" not in stripped
    assert "<segment_size>33554432</segment_size>" in stripped and "<userTransports>" in stripped


def test_one_trial_per_arm_times_every_subscription():
    r = run(1, 0.5, 1.0, 15.0, int(os.environ.get("ROS_DOMAIN_ID", "0") or 0))
    assert set(r["arms"]) == {"shipped", "fastdds_defaults", "mixed"}
    for arm in r["arms"].values():
        assert arm["started_together"]["subscriptions"] == 2 and arm["started_early"]["subscriptions"] == 1
        assert arm["started_together"]["never"] == 0 and arm["started_early"]["never"] == 0, arm
    assert "| shipped | started together | 2 |" in markdown(r)


def test_a_child_stuck_after_its_result_is_killed_and_its_result_kept():
    code = "import json, time; print(json.dumps({'first': 1.5}), flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child_result(proc, "sub1", 2.0) == {"first": 1.5} and proc.returncode is not None
    silent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    with pytest.raises(RuntimeError, match="'sub2' printed no result"):
        child_result(silent, "sub2", 1.0)
