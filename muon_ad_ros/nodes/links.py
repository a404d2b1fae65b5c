"""Publishers and subscriptions that notice when DDS has cut them off from the rest of the graph, say so
on /diagnostics and recreate themselves.

The ROS graph (DDS discovery) lists the endpoints of other nodes on a topic; DDS matching decides which
of them actually exchange data. An endpoint is cut off when, for `stale_timeout` seconds, the graph
lists peers on its topic (other nodes, same type, compatible QoS) and
- DDS has matched fewer of them than listed (publishers and subscriptions), or
- for an input that must carry data (a camera image), no sample has arrived although a matched
  publisher is listed: a transport that discovers but cannot deliver (a peer whose shared-memory
  segment is too small for the frame, a firewall that passes discovery only), or a publisher that
  stopped. A publisher that has never sent anything gets FIRST_SAMPLE_GRACE times longer: a camera
  node lists its publishers before its device or recording is open.
It is reported as ERROR naming the topic and the nodes on both sides, and destroyed and created again
with a doubling back-off until the condition clears. A process that discovery does not list at all is
not seen here; the input's STALE status covers that case.

On Humble a subscription cannot count the publishers DDS matched with it (rclpy has no
Subscription.get_publisher_count before Iron; distro.matched_count says None): there the first check runs on
publishers only (a cut-off between two of the graph's nodes is still seen, from the publishing side), and an
input that must carry data is judged by its samples alone, from when the graph first lists its publisher.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from rclpy.node import Node
from rclpy.qos import QoSCompatibility, QoSProfile, qos_check_compatible

from muon_ad_ros import distro
from muon_ad_ros.nodes.diagnostics import ERROR, OK, Diagnostics, kv

MAX_BACKOFF_S = 60.0
FIRST_SAMPLE_GRACE = 5.0


def _name(info) -> str:
    ns = info.node_namespace.rstrip("/")
    return f"{ns}/{info.node_name}"


class Link:
    """A publisher or subscription that can be recreated in place; publish() is safe from any thread."""

    def __init__(self, node: Node, kind: str, msg_type, topic: str, qos: QoSProfile,
                 callback: Callable | None = None, event_callbacks=None, expect_data: bool = False):
        self.node, self.kind, self.msg_type, self.qos = node, kind, msg_type, qos
        self.expect_data = expect_data
        self.topic = node.resolve_topic_name(topic)
        self.type_name = f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"
        self._callback, self._events = callback, event_callbacks
        self._lock = threading.Lock()
        self.last_sample = 0.0
        self.received = False           # any sample since the node started (across recreations)
        self.matched_since: float | None = None     # since when every listed peer is matched
        self.bad_since: float | None = None
        self.backoff = 0.0
        self.next_retry = 0.0
        self.recreated = 0
        self.handle = self._make()

    def _make(self):
        if self.kind == "publisher":
            return self.node.create_publisher(self.msg_type, self.topic, self.qos, event_callbacks=self._events)
        return self.node.create_subscription(self.msg_type, self.topic, self._on_sample, self.qos,
                                             event_callbacks=self._events)

    def _on_sample(self, msg):
        self.last_sample = time.monotonic()
        self.received = True
        self._callback(msg)

    def publish(self, msg):
        with self._lock:
            self.handle.publish(msg)

    def get_subscription_count(self) -> int:
        return self.handle.get_subscription_count()

    def matched(self) -> int | None:
        """Returns how many endpoints on the other side DDS has matched with this one (None: rclpy cannot tell,
        a subscription on Humble)."""
        return distro.matched_count(self.handle)

    def peers(self) -> list[str]:
        """Returns the other nodes the graph lists on this topic with compatible QoS, on the other side."""
        infos = (self.node.get_subscriptions_info_by_topic(self.topic) if self.kind == "publisher"
                 else self.node.get_publishers_info_by_topic(self.topic))
        me = self.node.get_fully_qualified_name()
        out = []
        for info in infos:
            if _name(info) == me or info.topic_type != self.type_name:
                continue
            pub, sub = (self.qos, info.qos_profile) if self.kind == "publisher" else (info.qos_profile, self.qos)
            if qos_check_compatible(pub, sub)[0] != QoSCompatibility.ERROR:
                out.append(_name(info))
        return out

    def problem(self, timeout: float) -> tuple[str, list[str]]:
        """Returns (what cuts this endpoint off from the peers the graph lists, or '', those peers)."""
        peers = self.peers()
        matched = self.matched() if peers else 0
        if not peers or (matched is not None and matched < len(peers)):
            self.matched_since = None
            return (f"DDS matched {matched} of the {len(peers)} listed", peers) if peers else ("", peers)
        now = time.monotonic()
        if self.matched_since is None:
            self.matched_since = now
        idle = now - max(self.last_sample, self.matched_since)
        limit = timeout if self.received else FIRST_SAMPLE_GRACE * timeout
        if self.kind == "subscription" and self.expect_data and idle > limit:
            return f"matched, but no sample for {idle:.1f} s", peers
        return "", peers

    def _destroy_handle(self):
        if self.kind == "publisher":
            self.node.destroy_publisher(self.handle)
        else:
            self.node.destroy_subscription(self.handle)

    def destroy(self):
        """Destroys the publisher or subscription for good."""
        with self._lock:
            self._destroy_handle()

    def recreate(self):
        with self._lock:     # one step for a publishing thread: the old handle or the new one
            self._destroy_handle()
            self.handle = self._make()
        self.last_sample = time.monotonic()
        self.recreated += 1


class LinkMonitor:
    """Creates a node's watched publishers and subscriptions and checks them once a second."""

    def __init__(self, node: Node, diagnostics: Diagnostics, timeout: Callable[[], float]):
        self.node, self.diag, self.timeout = node, diagnostics, timeout
        self.links: list[Link] = []
        node.create_timer(1.0, self.check)

    def publisher(self, msg_type, topic: str, qos: QoSProfile, event_callbacks=None) -> Link:
        link = Link(self.node, "publisher", msg_type, topic, qos, event_callbacks=event_callbacks)
        self.links.append(link)
        return link

    def subscription(self, msg_type, topic: str, callback: Callable, qos: QoSProfile, event_callbacks=None,
                     expect_data: bool = False) -> Link:
        link = Link(self.node, "subscription", msg_type, topic, qos, callback, event_callbacks, expect_data)
        self.links.append(link)
        return link

    def remove(self, link: Link) -> None:
        """Destroys a publisher or subscription made here and stops watching it."""
        self.links.remove(link)
        link.destroy()

    def check(self):
        timeout = self.timeout()
        now = time.monotonic()
        problems = []
        for link in self.links:
            what, peers = link.problem(timeout)
            if not what:
                link.bad_since, link.backoff, link.next_retry = None, 0.0, 0.0
                continue
            if link.bad_since is None:
                link.bad_since = now
            if now - link.bad_since < timeout and "no sample" not in what:
                continue        # discovery lists a peer a moment before DDS matches it
            if now >= link.next_retry:
                link.recreate()
                link.backoff = min(MAX_BACKOFF_S, max(timeout, 2 * link.backoff))
                link.next_retry = now + link.backoff
            problems.append(f"{link.kind} {link.topic} of {self.node.get_fully_qualified_name()} cut off from "
                            f"{', '.join(peers)}: {what}; recreated {link.recreated} time(s)")
            self.node.get_logger().error(problems[-1], throttle_duration_sec=10.0)
        values = kv(**{f"recreated {link.kind} {link.topic}": link.recreated for link in self.links if link.recreated})
        if problems:
            self.diag.status("links", ERROR, "; ".join(problems), values)
        else:
            self.diag.status("links", OK, f"{len(self.links)} publishers/subscriptions matched with every listed peer",
                             values)
