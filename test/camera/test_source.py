"""The shared pieces of the camera sources: timestamp mapping, pacing, reconnect backoff."""
import time

import pytest

from muon_ad_ros.camera.source import Backoff, Pacer, StampMapper


def test_device_clock_keeps_its_spacing_and_lands_on_the_host_clock():
    m = StampMapper()
    stamps = []
    for k in range(5):
        stamps.append(m(1000.0 + 20.0 * k))
        time.sleep(0.02)          # frames arrive no sooner than the source's 20 ms spacing
    assert [b - a for a, b in zip(stamps, stamps[1:])] == [20_000_000] * 4
    assert 0 <= time.time_ns() - stamps[-1] < 0.5e9


def test_host_clock_domains_pass_through():
    ms = time.time() * 1e3 - 5.0
    assert StampMapper()(ms, host_clock=True) == round(ms * 1e6)


def test_a_looping_recording_is_reanchored_and_stamps_stay_increasing():
    m = StampMapper()
    first = [m(1000.0 + 33.0 * k) for k in range(3)]
    time.sleep(0.01)
    again = m(1000.0)
    assert m.reanchors == 1 and again > first[-1] - 0.2e9


def test_a_stamp_is_never_later_than_the_frame_arrival():
    m = StampMapper()
    m(5000.0)                      # delivered late: the anchor includes the delay
    time.sleep(0.05)
    stamp = m(5010.0)              # 10 ms of source time but 50 ms of host time later: on time
    assert stamp <= time.time_ns()
    assert m(5020.0) - stamp == pytest.approx(10e6, abs=1e3)


def test_pacer_holds_the_rate_and_follows_source_timestamps():
    p = Pacer(50.0)
    t0 = time.monotonic()
    for _ in range(6):
        p.wait()
    assert time.monotonic() - t0 >= 5 / 50.0 * 0.95
    q = Pacer()
    t0 = time.monotonic()
    for k in range(4):
        q.wait(source_ms=100.0 + 40.0 * k)
    assert time.monotonic() - t0 >= 0.12 * 0.95


def test_backoff_doubles_to_its_limit_and_resets():
    b = Backoff(first=0.1, limit=0.35)
    assert [b.failed() for _ in range(4)] == [0.1, 0.2, 0.35, 0.35]
    assert not b.wait(0.0)
    b.reset()
    assert b.wait(0.0) and b.delay == 0.1
