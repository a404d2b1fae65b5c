"""SCHED_FIFO for the calling thread, and the fallback when the OS refuses."""
import os
import subprocess
import sys
import threading

import pytest

from muon_ad_ros.runtime.realtime import apply_realtime

CHILD = ("import json, os; from muon_ad_ros.runtime.realtime import apply_realtime; "
         "s = apply_realtime(20); print(json.dumps([s.policy_name, s.ok, s.reason, os.sched_getscheduler(0)]))")


def _in_thread(fn):
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("status", fn()))
    t.start()
    t.join()
    return box["status"]


@pytest.mark.skipif(os.geteuid() != 0, reason="granting SCHED_FIFO needs root or CAP_SYS_NICE here")
def test_fifo_applies_to_the_calling_thread_only():
    st = _in_thread(lambda: apply_realtime(30))
    assert st.ok and st.policy_name == "SCHED_FIFO" and st.priority == 30
    assert os.sched_getscheduler(0) == os.SCHED_OTHER     # the main thread is untouched


def test_refusal_falls_back_to_normal_scheduling_with_the_reason():
    import shutil
    if shutil.which("setpriv") is None or shutil.which("prlimit") is None:
        pytest.skip("setpriv/prlimit (util-linux) are needed to drop CAP_SYS_NICE and RLIMIT_RTPRIO")
    out = subprocess.run(["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice", "prlimit", "--rtprio=0",
                          "--", sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    import json
    policy, ok, reason, actual = json.loads(out.stdout)
    assert (policy, ok, actual) == ("SCHED_OTHER", False, os.SCHED_OTHER)
    assert "refused" in reason and "RLIMIT_RTPRIO=0" in reason


def test_out_of_range_priority_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        apply_realtime(150)
