"""Whether nodes with a graph's fully qualified names already run: ROS 2 lets two nodes share a name and then
routes parameter calls and services to either. GraphProcesses asks before its nodes join the graph. The
question runs in a process of its own (`NameCheck`), started first: once its node exists the node processes
start and import their libraries while it looks, and they join the graph when it found nothing.

A new participant learns of a running one from that one's periodic announcement: every 250 ms with
config/fastdds.xml (the launch file, the runner and tools/rosenv.sh load it), every 3 s with Fast DDS's
defaults. With announcements every 250 ms a fresh process listed a running graph in 0.19 s in 18 of 20 tries
on the loaded 2-core machine (max 0.75 s), so the check looks for WAIT_S seconds and ends as soon as it finds
a name taken; nodes started without the profile need a longer --name-check (3.5 s) to be seen.

  python -m muon_ad_ros.launcher.names SECONDS FQN...    (prints "looking", then the JSON list of the names
                                                          it found taken)
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time

from muon_ad_ros.launcher import supervise

WAIT_S = 1.0        # default discovery wait of `muon-ad run/demo/soak --name-check` and the benchmarks
GATHER_S = 0.3      # after the first name found: the rest of its graph, whose nodes are learnt together
HEAD_START_S = 5.0      # longest the node processes wait for the check's node to exist before starting
START_LIMIT_S = 30.0    # longest the check's own start-up may take on a loaded machine


def _fqn(name: str, namespace: str) -> str:
    return f"{namespace.rstrip('/')}/{name}"


def taken(fqns: list[str], wait_s: float) -> list[str]:
    """Returns which of `fqns` nodes on the graph have, looking for up to wait_s seconds (in this process)."""
    import signal

    import rclpy

    from muon_ad_ros.nodes.spin import StopRequest, close_ros
    stop = StopRequest()        # a stop signal ends the look; none interrupts the teardown
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    supervise.init_ros()
    node = rclpy.create_node(f"_muon_ad_name_check_{os.getpid()}")     # hidden: `ros2 node list` skips it
    wanted, found = set(fqns), set()
    print("looking", flush=True)
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline and not stop:
            seen = {_fqn(n, ns) for n, ns in node.get_node_names_and_namespaces()} & wanted
            if seen and not found:
                deadline = min(deadline, time.monotonic() + GATHER_S)
            found |= seen
            time.sleep(0.02)
        print(json.dumps(sorted(found)), flush=True)      # before the teardown, which close_ros may cut
    finally:
        close_ros(node)
    return sorted(found)


class NameCheck:
    """`taken` in a child process; result() waits for its answer."""

    def __init__(self, fqns: list[str], wait_s: float, env: dict, log):
        self.proc = supervise.spawn([sys.executable, "-m", "muon_ad_ros.launcher.names", repr(wait_s), *fqns],
                                    env=env, stdout=subprocess.PIPE, stderr=log, bufsize=0)
        self.deadline = time.monotonic() + wait_s + START_LIMIT_S
        self._pending = b""

    def _line(self, limit_s: float) -> str:
        """Returns the check's next line, or "" when none came within limit_s seconds or it ended."""
        end = time.monotonic() + limit_s
        while b"\n" not in self._pending:
            fd = self.proc.stdout.fileno()
            if not select.select([fd], [], [], max(0.0, end - time.monotonic()))[0]:
                return ""
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode(errors="replace")

    def looking(self) -> None:
        """Returns once the check's node exists, its process ended, or after HEAD_START_S."""
        self._line(HEAD_START_S)

    def result(self) -> list[str] | None:
        """Returns the names found taken, or None when the check gave no answer in time."""
        line = self._line(self.deadline - time.monotonic())
        if line.strip() == "looking":     # looking() gave up waiting for it
            line = self._line(self.deadline - time.monotonic())
        if line:        # it tears its participant down by itself; reaped when it ends
            self.proc.stdout.close()
            threading.Thread(target=self.proc.wait, name="name-check-reaper", daemon=True).start()
        try:
            return list(json.loads(line))
        except ValueError:
            return None


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    taken(argv[1:], float(argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
