"""A second ROS 2 process for the transport tests, started by them with its own environment.

  observe   --seconds S : as a default-environment tool would (no FASTDDS variable): wait for the
              style_transfer node in the node list, read its retention parameter, count stylized frames
              and pruning states; prints one JSON line.
  camera    --topic T   : publish 160x120 rgb8 frames at 10 Hz as node "peer_camera" (the tests stop and
              continue this process with SIGSTOP/SIGCONT: a publisher the graph still lists that
              delivers nothing).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import rclpy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from muon_ad_ros.nodes.images import fill_image, stamp_seconds
from muon_ad_ros.nodes.spin import close_ros
from muon_ad_ros.nodes.qos import image_qos, reliable_qos


def observe(seconds: float, node_name: str) -> dict:
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    from muon_ad_ros.msg import PruningState
    node = rclpy.create_node("default_env_observer")
    t0 = time.monotonic()
    result = {"discovered_s": None, "retention": None}
    images: dict = {}
    states: set = set()
    key = lambda h: (h.stamp.sec, h.stamp.nanosec)      # noqa: E731
    node.create_subscription(Image, "/stylized/image_raw", lambda m: images.setdefault(key(m.header), time.time() - stamp_seconds(m.header.stamp)), image_qos(10))
    node.create_subscription(PruningState, "/stylized/pruning_state", lambda m: states.add(key(m.header)), reliable_qos(50))
    client = node.create_client(GetParameters, f"/{node_name}/get_parameters")
    future, sent = None, 0.0
    while time.monotonic() < t0 + seconds:
        rclpy.spin_once(node, timeout_sec=0.02)
        if result["discovered_s"] is None and node_name in node.get_node_names():
            result["discovered_s"] = round(time.monotonic() - t0, 2)
        # sent again after 2 s: a server that has not matched this client's response reader within 100 ms
        # drops the response (rmw_fastrtps: "client will not receive response")
        stale = future is not None and not future.done() and time.monotonic() - sent > 2.0
        if (future is None or stale) and result["retention"] is None and client.service_is_ready():
            if stale:
                client.remove_pending_request(future)
            future, sent = client.call_async(GetParameters.Request(names=["retention"])), time.monotonic()
        if future is not None and future.done() and result["retention"] is None:
            result["retention"] = parameter_value_to_python(future.result().values[0])
    # Frames after the first image: each has a reliable pruning state, so a state without its image is a loss.
    first = min(images) if images else None
    expected = sorted(s for s in states if first is not None and s >= first)
    # the newest few states may belong to frames still in flight when the window closed
    expected = expected[:-3]
    missing = [s for s in expected if s not in images]
    result.update(images=len(images), states=len(states), expected=len(expected), missing=len(missing),
                  latency_ms_p50=float(np.median(list(images.values())) * 1e3) if images else None)
    return result


def camera(topic: str, seconds: float):
    node = rclpy.create_node("peer_camera")
    pub = node.create_publisher(Image, topic, image_qos())
    img = np.zeros((120, 160, 3), np.uint8)
    t0 = time.monotonic()
    while time.monotonic() < t0 + seconds:
        hdr = Header(frame_id="cam")
        hdr.stamp = node.get_clock().now().to_msg()
        pub.publish(fill_image(Image(), img, "rgb8", hdr))
        rclpy.spin_once(node, timeout_sec=0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("observe", "camera"))
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--node", default="style_transfer")
    ap.add_argument("--topic", default="/test_cam/image_raw")
    a = ap.parse_args()
    rclpy.init()
    if a.mode == "observe":
        print(json.dumps(observe(a.seconds, a.node)), flush=True)
    else:
        camera(a.topic, a.seconds)
    close_ros()


if __name__ == "__main__":
    main()
