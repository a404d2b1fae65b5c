"""/diagnostics: status levels, key/value helpers and the publisher of a node's latest statuses."""
from __future__ import annotations

import os
import threading
from typing import Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from muon_ad_ros import distro

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR,
                          DiagnosticStatus.STALE)


def resident_mb() -> float:
    """Returns this process's resident set size in MiB (from /proc, no extra dependency)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def kv(**items) -> list[KeyValue]:
    """Returns diagnostic key/values from keyword arguments."""
    return [KeyValue(key=k, value=str(v)) for k, v in items.items()]


def status_prefix(fully_qualified_name: str) -> str:
    """Returns the node part of its status names: the full name without the leading slash
    ("robot1/style_transfer"), so two robots on one /diagnostics stay apart."""
    return fully_qualified_name.lstrip("/")


class Diagnostics:
    """Publishes the node's latest statuses on /diagnostics every `period` seconds, named
    `<namespace/node>: <status>` with hardware id `muon_ad_ros/<namespace/node>`. Every node's statuses include
    `transport`: ERROR when the graph's Fast DDS profile is not in effect in this process (distro.profile_check),
    so a profile set under a variable the installed Fast DDS does not read fails loudly."""

    def __init__(self, node: Node, period: float = 1.0):
        self.node = node
        self.prefix = status_prefix(node.get_fully_qualified_name())
        self.hardware_id = f"muon_ad_ros/{self.prefix}"
        self._statuses: dict[str, DiagnosticStatus] = {}
        self._lock = threading.Lock()
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._providers: list[Callable[[], None]] = [self._transport]
        self._transport_checked = False
        node.create_timer(period, self.publish)

    def _transport(self):
        """Checks the transport profile once (the shared-memory segment is made with the node's participant)."""
        if self._transport_checked:
            return
        self._transport_checked = True
        ok, message, values = distro.profile_check(rclpy.get_rmw_implementation_identifier())
        self.status("transport", OK if ok else ERROR, message, kv(**values))
        if not ok:
            self.node.get_logger().error(message)

    def add_provider(self, fn: Callable[[], None]):
        """Registers a function called before each publication to refresh statuses."""
        self._providers.append(fn)

    def status(self, name: str, level: int, message: str, values: list[KeyValue] | None = None):
        """Sets the status `<namespace/node>: <name>` published from now on."""
        full = f"{self.prefix}: {name}"
        st = DiagnosticStatus(level=level, name=full, message=message, hardware_id=self.hardware_id,
                              values=list(values or []))
        with self._lock:
            self._statuses[full] = st

    def publish(self):
        for fn in self._providers:
            try:
                fn()
            except Exception as exc:  # a broken provider must not stop diagnostics
                self.status("diagnostics", ERROR, f"provider failed: {exc}")
        arr = DiagnosticArray()
        arr.header.stamp = self.node.get_clock().now().to_msg()
        with self._lock:
            arr.status = list(self._statuses.values())
        for st in arr.status:
            if not any(v.key == "resident_mb" for v in st.values):
                st.values.append(KeyValue(key="resident_mb", value=f"{resident_mb():.1f}"))
        self._pub.publish(arr)
