"""Child processes of the programs that start nodes (`muon-ad run`, demo, soak, the benchmarks): the one
place they are started and stopped.

- `spawn` starts a child that ends by itself when this process dies, however it dies: on Linux the child
  asks for SIGTERM at its parent's death (PR_SET_PDEATHSIG) before it runs its program, so a runner killed
  with SIGKILL or by the OOM killer leaves no node behind.
- `stop` ends children the way `ros2 launch` does: SIGINT (the nodes' clean shutdown), then SIGTERM, then
  SIGKILL, each after a bounded wait; a further signal to this process moves on to the next one at once.
- `run_supervised` runs a program with SIGINT and SIGTERM handled: the first raises `Interrupted` in the main
  thread (cleanup code runs, every child is stopped) and the program exits 0.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Iterable

STOP_WAIT_S = 5.0       # the wait after SIGINT and after SIGTERM, as ros2 launch's sigterm/sigkill timeouts
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Runs in the child before its program (`python -I -S`: about 10 ms): PR_SET_PDEATHSIG (1) asks for SIGTERM
# when the parent dies. The request is tied to the thread that forked, and the parent may already have died
# before it: the child then has another parent and ends instead of running its program.
_GUARD = ("import ctypes, os, signal, sys\n"
          "arg = ctypes.c_ulong\n"
          "if ctypes.CDLL(None, use_errno=True).prctl(1, arg(signal.SIGTERM), arg(0), arg(0), arg(0)):\n"
          "    raise OSError(ctypes.get_errno(), 'prctl(PR_SET_PDEATHSIG)')\n"
          "if os.getppid() != int(sys.argv[1]):\n"
          "    sys.exit(0)\n"
          "os.execvp(sys.argv[2], sys.argv[2:])\n")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM asked the program to stop (raised once, in the main thread)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Refused(Exception):
    """The program refuses to go on; run_supervised prints the message and exits 1."""


class _Signals:
    """What SIGINT and SIGTERM asked for. The first one raises Interrupted unless a child is being started or
    stopped (then it is raised right after); later ones only count, so they cannot interrupt the cleanup,
    and each one cuts the current wait of `stop` short."""

    def __init__(self):
        self.received: list[int] = []
        self.holds = 0
        self.raised = False

    def __call__(self, signum, _frame):
        self.received.append(signum)
        if not self.holds and not self.raised:
            self.raised = True
            raise Interrupted(signum)

    @contextlib.contextmanager
    def held(self):
        self.holds += 1
        try:
            yield
        finally:
            self.holds -= 1
        if not self.holds and self.received and not self.raised:
            self.raised = True
            raise Interrupted(self.received[0])


_signals = _Signals()
_children: list[subprocess.Popen] = []      # every child spawned and not yet seen ended


def spawn(cmd: list[str], **popen_kwargs) -> subprocess.Popen:
    """Returns the Popen of `cmd`, a child that gets SIGTERM when this process dies (Linux). It must be called
    from the main thread: the kernel sends the signal when the thread that started the child ends."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("child processes are started from the main thread: a child's parent-death signal "
                           "fires when the thread that started it ends")
    env = popen_kwargs.get("env")
    if shutil.which(cmd[0], path=(env or os.environ).get("PATH")) is None:
        raise FileNotFoundError(f"{cmd[0]!r} is not an executable on PATH")
    if sys.platform.startswith("linux"):
        cmd = [sys.executable, "-I", "-S", "-c", _GUARD, str(os.getpid()), *cmd]
    with _signals.held():       # a signal cannot land between the fork and the child's registration
        proc = subprocess.Popen(cmd, **popen_kwargs)
        _children[:] = [p for p in _children if p.poll() is None] + [proc]
    return proc


ESCALATION = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


def stop(procs: Iterable[subprocess.Popen], timeout: float | None = None, signals=ESCALATION) -> None:
    """Ends `procs`: each of `signals` in turn (None: no signal, only the wait) to those still running, each
    followed by a wait of up to `timeout` seconds (STOP_WAIT_S); a signal to this process meanwhile ends the
    current wait. The last one is SIGKILL."""
    procs = list(procs)
    timeout = STOP_WAIT_S if timeout is None else timeout
    with _signals.held():
        for sig in signals:
            live = [p for p in procs if p.poll() is None]
            for p in live if sig else ():
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(sig)
            seen = len(_signals.received)
            deadline = time.monotonic() + timeout
            while (any(p.poll() is None for p in live) and time.monotonic() < deadline
                   and (len(_signals.received) == seen or sig == signal.SIGKILL)):
                time.sleep(0.02)


def stop_all(timeout: float | None = None) -> None:
    """Ends every child `spawn` started that still runs."""
    stop([p for p in _children if p.poll() is None], timeout)


def init_ros(context=None) -> None:
    """rclpy.init without rclpy's SIGINT/SIGTERM handlers: the program handles the signals (run_supervised, or
    the check process's own), while rclpy's would shut the context down under the threads that still spin it."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)


def run_supervised(main: Callable[[], int], prog: str) -> int:
    """Returns main()'s exit code, run with SIGINT and SIGTERM handled: on the first, Interrupted unwinds main
    (its cleanup runs) and the code is 0; on Refused, its message goes to stderr and the code is 1. Every child
    still running at the end is stopped."""
    _signals.received.clear()
    _signals.raised = False
    previous = {sig: signal.signal(sig, _signals) for sig in STOP_SIGNALS}
    try:
        return main()
    except Interrupted as stopped:
        print(f"{prog}: stopped on {stopped}", flush=True)
        return 0
    except Refused as refused:
        print(f"{prog}: {refused}", file=sys.stderr, flush=True)
        return 1
    finally:
        _signals.raised = True        # the program ends: later signals only shorten the waits below
        stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
