"""The QoS profiles of the graph's topics and the incompatible-QoS report that names both sides."""
from __future__ import annotations

from typing import Any, Iterable

from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_policy_name_from_kind)

from muon_ad_ros import distro

PublisherEventCallbacks, SubscriptionEventCallbacks = distro.event_callback_classes()


def image_qos(depth: int = 1) -> QoSProfile:
    """Returns the sensor-data QoS for images: best effort, volatile, keep the latest `depth`."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)


def reliable_qos(depth: int = 10) -> QoSProfile:
    """Returns the QoS for small state messages (detections, pruning state, markers)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def _describe_qos(profiles: Iterable[Any]) -> str:
    return "; ".join(f"{i.node_namespace.rstrip('/')}/{i.node_name}: {i.qos_profile.reliability.name}/"
                     f"{i.qos_profile.durability.name}" for i in profiles) or "none found"


def qos_event_callbacks(node: Node, topic: str, qos: QoSProfile):
    """Returns (subscription, publisher) event callbacks that log an incompatible-QoS event naming
    this side (node, QoS) and the nodes and QoS on the other side."""
    mine = f"{qos.reliability.name}/{qos.durability.name}"

    def report(kind: str, policy: str, attempt: int = 0):
        others = (node.get_publishers_info_by_topic(topic) if kind == "subscriber"
                  else node.get_subscriptions_info_by_topic(topic))
        if attempt < 5 and any(i.node_name.startswith("_NODE_NAME_UNKNOWN") for i in others):
            # DDS reports the event before the graph cache knows the remote node's name.
            timer = None

            def again():
                node.destroy_timer(timer)
                report(kind, policy, attempt + 1)
            timer = node.create_timer(0.2, again)
            return
        verb = "cannot receive from publishers" if kind == "subscriber" else "is not received by subscribers"
        hint = ("Images use sensor-data QoS (best effort): set the other side to match." if kind == "subscriber"
                else "In RViz set the image display's Reliability Policy to Best Effort.")
        node.get_logger().error(f"incompatible QoS on {topic}: this {kind} ({node.get_name()}, {mine}) {verb} "
                                f"[{_describe_qos(others)}]; offending policy {policy}. {hint}")

    return (SubscriptionEventCallbacks(incompatible_qos=lambda e: report(
                "subscriber", qos_policy_name_from_kind(e.last_policy_kind))),
            PublisherEventCallbacks(incompatible_qos=lambda e: report(
                "publisher", qos_policy_name_from_kind(e.last_policy_kind))))
