"""The executor the nodes spin in: single-threaded by default, the two-thread one on request."""
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

from muon_ad_ros.nodes.spin import make_executor


@pytest.fixture
def context():
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def test_default_is_single_threaded_and_multi_can_be_asked_for(context, monkeypatch):
    monkeypatch.delenv("MUON_AD_EXECUTOR", raising=False)
    assert type(make_executor(context=context)) is SingleThreadedExecutor
    monkeypatch.setenv("MUON_AD_EXECUTOR", "multi")
    assert type(make_executor(context=context)) is MultiThreadedExecutor
    with pytest.raises(ValueError, match="MUON_AD_EXECUTOR"):
        make_executor("events", context=context)
