"""The executor the nodes spin in and the process's init/spin/shutdown loop."""
from __future__ import annotations

import os
import signal

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor


def make_executor(kind: str | None = None, context=None):
    """Returns the executor the nodes spin in: a SingleThreadedExecutor, or with `MUON_AD_EXECUTOR=multi`
    the two-thread MultiThreadedExecutor. Inference runs in its own thread either way; the executor only
    hands over frames, timers and services. Measured in the graph benchmark (60 s at 30 Hz, three runs
    each): single 0.1 / 0.2 / 0.4 % missed frames, multi 1.8 / 5.6 / 8.0 % (its thread pool's hand-off took
    ~15 % of the style node's busy samples). Under overload (SCHED_FIFO inference never idle) single
    showed ~1 s output stalls in the previous session's 8 s probes (above 34 Hz) where multi did not; the
    latest probes (fresh clone, this session's models) sustained 50.6 Hz and showed none up to 60 Hz.
    The first-contact stalls once blamed on single also happen with multi (py-spy: nodes idle, DDS
    discovery pending). (rclpy's EventsExecutor: its timers did not fire in this rclpy.)"""
    kind = kind or os.environ.get("MUON_AD_EXECUTOR", "single")
    if kind == "single":
        return SingleThreadedExecutor(context=context)
    if kind == "multi":
        return MultiThreadedExecutor(num_threads=2, context=context)
    raise ValueError(f"MUON_AD_EXECUTOR must be 'single' or 'multi', got {kind!r}")


def run_node(node_class, args=None, **kwargs) -> int:
    """Returns the exit code after initialising rclpy, spinning `node_class` and shutting down."""
    rclpy.init(args=args)
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    node = None
    try:
        node = node_class(**kwargs)
        executor = make_executor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
