"""The start gate of a node process: a launcher that checks the graph before its nodes join it
(muon_ad_ros.launcher.processes) starts them with the read end of a pipe named in START_FD_ENV, so their
imports run while it checks. A byte on the pipe lets the node go on; the pipe closed without one (the names
are taken, or the launcher is gone) ends it before it creates anything on the graph. Without the variable
(`ros2 launch`, `ros2 run`) the node goes on at once. No rclpy here: the launcher imports the name."""
from __future__ import annotations

import os
import select
import sys

START_FD_ENV = "MUON_AD_START_FD"


def wait_for_start(stop, poll: float = 0.1) -> bool:
    """Returns whether the node may join the graph; `stop` (nodes.spin.StopRequest) turning true ends the
    wait, so a stop signal during it is seen within `poll` seconds."""
    fd = os.environ.pop(START_FD_ENV, None)
    if fd is None:
        return True
    fd = int(fd)
    try:
        while not stop:
            if select.select([fd], [], [], poll)[0]:
                if os.read(fd, 1):
                    return True
                print("not started: the launcher withdrew the start (the node names are taken on the graph, or "
                      "the launcher ended)", file=sys.stderr, flush=True)
                return False
        return False
    finally:
        os.close(fd)
