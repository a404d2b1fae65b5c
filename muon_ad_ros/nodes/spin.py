"""The executor the nodes spin in and the process's init/spin/shutdown loop."""
from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from muon_ad_ros.nodes import gate


def make_executor(kind: str | None = None, context=None):
    """Returns the executor the nodes spin in: a SingleThreadedExecutor, or with `MUON_AD_EXECUTOR=multi`
    the two-thread MultiThreadedExecutor. Inference runs in its own thread either way; the executor only
    hands over frames, timers and services. Single is the default because it misses fewer frames: in the
    graph benchmark (60 s at 30 Hz) single 0.1-0.4 % missed, multi 1.8-8.0 % (its thread pool's hand-off
    took ~15 % of the style node's busy samples). rclpy's EventsExecutor is not used: its timers did not
    fire in this rclpy."""
    kind = kind or os.environ.get("MUON_AD_EXECUTOR", "single")
    if kind == "single":
        return SingleThreadedExecutor(context=context)
    if kind == "multi":
        return MultiThreadedExecutor(num_threads=2, context=context)
    raise ValueError(f"MUON_AD_EXECUTOR must be 'single' or 'multi', got {kind!r}")


class StopRequest:
    """Set by SIGINT and SIGTERM, as often as they come: the handler only records the request, so a
    second signal (the terminal's and launch's SIGINT both reach a node) cannot interrupt the cleanup."""

    def __init__(self):
        self.signals: list[int] = []

    def __call__(self, signum, _frame):
        self.signals.append(signum)

    def __bool__(self) -> bool:
        return bool(self.signals)


# Longest the DDS teardown of a process may take before the process ends without it (close_ros)
TEARDOWN_LIMIT_S = 5.0


def close_ros(node=None, context=None, limit_s: float = TEARDOWN_LIMIT_S, shutdown: bool = True,
              stacks=None) -> None:
    """Destroys `node` (if given) and, with `shutdown`, shuts `context` down (rclpy's default one if None); if
    that takes longer than `limit_s`, the process ends there (exit status 1, every thread's stack on stderr).

    Why: Fast DDS 3.2 can livelock while it deletes a participant (the last node of a context).
    DomainParticipantImpl::set_listener(nullptr) waits for the discovery callbacks in flight, but its wait
    returns at once (the deadline is steady_clock's maximum; eProsima/Fast-DDS#6513) and it takes the
    listener mutex again in a loop, while the callbacks it waits for block on that mutex. Seen under gdb
    in a process whose peers were leaving the graph as it shut down: 100 % of a core for over 9 minutes.
    faulthandler's watchdog is a C thread, so it also fires while the stuck call holds the GIL. The nodes,
    the bench children and the recorder write what they produced before calling this; the demo and bench
    graph write their report after their collector closes, so a cut teardown ends them without it.
    `stacks`: the open file the stacks go to (default stderr)."""
    faulthandler.dump_traceback_later(limit_s, exit=True, file=stacks or sys.stderr)
    try:
        if node is not None:
            node.destroy_node()
        if shutdown:
            rclpy.try_shutdown(context=context)
    finally:
        faulthandler.cancel_dump_traceback_later()


def run_node(node_class, args=None, poll: float = 0.1, **kwargs) -> int:
    """Returns the exit code (0 on SIGINT/SIGTERM) after initialising rclpy, spinning `node_class` until
    a signal asks to stop, then closing the node (its threads joined, inference sessions closed) and
    only then shutting the context down, so no thread publishes on an invalid context. A launcher's start
    gate (nodes/gate.py) is waited for first: a node it withdraws returns 0 without joining the graph.

    rclpy's own signal handlers are off: they shut the context down at the first signal while the
    node's threads still publish, and let the second raise KeyboardInterrupt inside the cleanup. The
    executor waits at most `poll` seconds, so a signal is seen within that time."""
    stop = StopRequest()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    if not gate.wait_for_start(stop, poll):
        return 0
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = node_class(**kwargs)
        executor = make_executor()
        executor.add_node(node)
        while not stop and rclpy.ok():
            executor.spin_once(timeout_sec=poll)
        executor.remove_node(node)
        executor.shutdown()
    except ExternalShutdownException:
        pass
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close:
                close()
            left = [t.name for t in threading.enumerate() if t is not threading.current_thread() and t.is_alive()]
            if left:
                node.get_logger().error(f"threads still running after close: {left}")
            if stop:
                names = [signal.Signals(s).name for s in stop.signals]
                node.get_logger().info(f"stopped on {', '.join(names)}; threads and inference sessions closed")
        close_ros(node)
        # Python puts its own handlers back to the default (terminate) while the interpreter finalizes,
        # which takes a while with DDS and ONNX Runtime to tear down; ignored signals stay ignored.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    return 0
