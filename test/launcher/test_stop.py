"""The programs that start node processes stop them all: SIGINT and SIGTERM to `muon-ad run`, `muon-ad demo`,
`muon-ad bench startup` and `muon-ad bench graph` end every process they started within 10 s and exit 0;
SIGKILL to the runner leaves no node behind (each node gets SIGTERM when its parent dies); a second runner
beside a running graph is refused, naming the nodes, before any of its nodes joins the graph; a further
signal to a stopping program moves on to the next signal for its children at once. Real programs, real
node processes, the test's own DDS domain."""
from __future__ import annotations

import signal
import subprocess
import sys

import psutil
import pytest

from conftest import wait_for

STOPPED_S = 10.0     # the bound: every process of the graph gone and the program ended


@pytest.fixture(scope="module")
def recording():
    from muon_ad_ros.launcher.demo import ensure_recording
    return str(ensure_recording())


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from bundle_helpers import tiny_bundle
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


class Program:
    """A `muon-ad` command run as a process of its own, its output in files."""

    def __init__(self, tmp_path, name: str, *args: str):
        self.out, self.err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "muon_ad_ros.cli", *args], stdout=out, stderr=err)

    def output(self) -> str:
        return f"stdout:\n{self.out.read_text()[-3000:]}\nstderr:\n{self.err.read_text()[-3000:]}"

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def nodes(self) -> list[psutil.Process]:
        return [p for p in self.descendants() if "muon_ad_ros.nodes." in " ".join(_cmdline(p))]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for p in self.descendants():
            p.kill()


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def running(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Returns the processes that still run (a zombie waiting for its reaper does not)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def up(probe, prog: Program, *fqns: str) -> bool:
    """Returns whether the program's node processes run and the probe lists their nodes."""
    names = {f"{ns.rstrip('/')}/{n}" for n, ns in probe.node.get_node_names_and_namespaces()}
    return set(fqns) <= names and len(prog.nodes()) == len(fqns)


@pytest.fixture
def program(tmp_path):
    started = []

    def start(name, *args):
        started.append(Program(tmp_path, name, *args))
        return started[-1]

    yield start
    for p in started:
        p.close()


def signal_and_check(prog: Program, sig: int, expect_code: int | None = 0):
    """Sends `sig` to the program once its graph runs; every process it started is gone and it exited with
    `expect_code` (None: not waited for) within STOPPED_S."""
    children = prog.descendants()
    assert prog.nodes(), ("no node process", [_cmdline(p) for p in children], prog.output())
    prog.proc.send_signal(sig)
    if expect_code is not None:
        assert wait_for(lambda: prog.proc.poll() is not None, STOPPED_S), f"still running\n{prog.output()}"
        assert prog.proc.returncode == expect_code, prog.output()
    left = wait_for(lambda: not running(children), STOPPED_S) or running(children)
    assert left is True, ([_cmdline(p) for p in left], prog.output())


def graph_args(recording, bundle):
    return ["--recording", recording, "--style-model", bundle, "--fps", "15"]


EDGE = ("/camera/realsense_camera", "/style_transfer", "/detection", "/controller")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_stops_every_node_and_exits_0(probe, program, recording, bundle, tmp_path, sig):
    prog = program("run", "run", *graph_args(recording, bundle), "--log-dir", str(tmp_path / "logs"))
    assert wait_for(lambda: up(probe, prog, *EDGE), 60), prog.output()
    signal_and_check(prog, sig)
    out = prog.out.read_text()
    # each node's own clean shutdown, not the SIGKILL at the end of the escalation
    assert "exit codes: {'realsense_camera': 0, 'style_transfer': 0, 'detection': 0, 'controller': 0}" in out, out
    assert f"stopped on {signal.Signals(sig).name}" in out


def test_sigkill_to_the_runner_leaves_no_node(probe, program, recording, bundle, tmp_path):
    prog = program("run", "run", *graph_args(recording, bundle), "--log-dir", str(tmp_path / "logs"))
    assert wait_for(lambda: up(probe, prog, *EDGE), 60), prog.output()
    signal_and_check(prog, signal.SIGKILL, expect_code=-signal.SIGKILL)
    for name in ("style_transfer", "controller"):     # they ended by their own clean shutdown
        assert "stopped on SIGTERM" in (tmp_path / "logs" / f"{name}.log").read_text()


def test_a_second_run_beside_a_running_graph_is_refused_naming_the_nodes(probe, program, tmp_path):
    args = ["run", "--cameras", "none", "--style-input", "/stop_test/image", "--no-detection"]
    first = program("first", *args, "--log-dir", str(tmp_path / "first"))
    assert wait_for(lambda: up(probe, first, "/style_transfer", "/controller"), 60), first.output()
    # a long look, so a loaded machine's slow discovery cannot make it miss them; it ends at the first found
    second = program("second", *args, "--name-check", "20", "--log-dir", str(tmp_path / "second"))
    assert wait_for(lambda: second.proc.poll() is not None, 60), second.output()
    assert second.proc.returncode == 1, second.output()
    err = second.err.read_text()
    assert "/style_transfer" in err and "/controller" in err and "already run" in err, second.output()
    # the refused graph's nodes ended at their start gate, without joining; the first graph runs on
    for name in ("style_transfer", "controller"):
        assert "not started" in (tmp_path / "second" / f"{name}.log").read_text()
    assert first.proc.poll() is None and len(first.nodes()) == 2, first.output()
    names = [n for n, _ in probe.node.get_node_names_and_namespaces()]
    assert names.count("style_transfer") == 1 and names.count("controller") == 1, names


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_demo_stops_every_node_and_exits_0(probe, program, recording, bundle, tmp_path, sig):
    prog = program("demo", "demo", *graph_args(recording, bundle), "--seconds", "120", "--out", str(tmp_path / "demo"))
    assert wait_for(lambda: up(probe, prog, *EDGE), 60), prog.output()
    signal_and_check(prog, sig)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_bench_startup_stops_every_node_and_exits_0(probe, program, recording, tmp_path, sig):
    prog = program("startup", "bench", "startup", "--starts", "3", "--timeout", "60", "--out", str(tmp_path / "b"))
    assert wait_for(lambda: up(probe, prog, *EDGE), 90), prog.output()
    signal_and_check(prog, sig)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_bench_graph_stops_every_node_and_exits_0(probe, program, recording, tmp_path, sig):
    prog = program("graph", "bench", "graph", "--rates", "10", "--seconds", "2", "--search-steps", "0",
                   "--out", str(tmp_path / "b"))
    assert wait_for(lambda: up(probe, prog, "/style_transfer", "/detection", "/controller"), 90), prog.output()
    signal_and_check(prog, sig)


STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGINT, lambda s, f: print('got SIGINT', flush=True))
signal.signal(signal.SIGTERM, lambda s, f: print('got SIGTERM', flush=True))
print('ready', flush=True)
while True:
    time.sleep(1)
"""

PARENT = """
import subprocess, sys, time
from muon_ad_ros.launcher import supervise
supervise.STOP_WAIT_S = 300.0
def main():
    supervise.spawn([sys.executable, '-c', {stubborn!r}], stdout=open({log!r}, 'w'))
    while True:
        time.sleep(0.1)
sys.exit(supervise.run_supervised(main, 'parent'))
"""


def test_each_further_signal_moves_the_stop_to_the_next_signal_at_once(tmp_path):
    """A child that ignores SIGINT and SIGTERM, its parent waiting 300 s after each: a second and a third
    signal to the parent send SIGTERM and then SIGKILL at once."""
    log = tmp_path / "child.log"
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(stubborn=STUBBORN, log=str(log))])
    try:
        assert wait_for(lambda: "ready" in log.read_text() if log.exists() else False, 30)
        child = psutil.Process(parent.pid).children()[0]
        parent.send_signal(signal.SIGTERM)          # -> SIGINT to the child, then a 300 s wait
        assert wait_for(lambda: "got SIGINT" in log.read_text(), 10), log.read_text()
        parent.send_signal(signal.SIGTERM)          # -> SIGTERM now
        assert wait_for(lambda: "got SIGTERM" in log.read_text(), 10), log.read_text()
        parent.send_signal(signal.SIGINT)           # -> SIGKILL now
        assert wait_for(lambda: parent.poll() is not None, 10)
        assert parent.returncode == 0 and not running([child])
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
