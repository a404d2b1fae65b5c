"""Static TF of the camera nodes, laid out as realsense-ros lays it out: `<parent> -> <camera>_link`
(the mounting pose, a parameter), `<camera>_link -> <stream>_frame` (the stream's extrinsics; REP-103
body axes) and `<stream>_frame -> <stream>_optical_frame` (REP-103 optical axes: z forward, x right,
y down). Published once on /tf_static (transient local, as tf2's StaticTransformBroadcaster does)."""
from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# Body frame (x forward, y left, z up) -> optical frame (z forward, x right, y down).
OPTICAL = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], np.float64)


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Returns the 3x3 rotation of REP-103 fixed-axis roll, pitch, yaw (R = Rz(yaw) Ry(pitch) Rx(roll))."""
    cr, sr, cp, sp, cy, sy = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw), \
        math.sin(yaw)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def pose_matrix(pose) -> np.ndarray:
    """Returns the 4x4 transform of [x, y, z, roll, pitch, yaw]."""
    m = np.eye(4)
    m[:3, :3] = rpy_matrix(*pose[3:6])
    m[:3, 3] = pose[:3]
    return m


def quaternion(r: np.ndarray) -> tuple[float, float, float, float]:
    """Returns (x, y, z, w) of a 3x3 rotation matrix."""
    t = np.trace(r)
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = ((r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s)
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = math.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k]) * 2
        v = [0.0, 0.0, 0.0]
        v[i] = 0.25 * s
        v[j] = (r[j, i] + r[i, j]) / s
        v[k] = (r[k, i] + r[i, k]) / s
        q = (v[0], v[1], v[2], (r[k, j] - r[j, k]) / s)
    n = math.sqrt(sum(x * x for x in q)) * (1 if q[3] >= 0 else -1)    # w >= 0, as tf2 writes it
    return tuple(float(x / n) for x in q)


def stream_frame(optical_frame: str) -> str:
    """Returns the body frame of an optical frame (camera_color_optical_frame -> camera_color_frame)."""
    return optical_frame[:-len("_optical_frame")] + "_frame" if optical_frame.endswith("_optical_frame") \
        else optical_frame + "_body"


def optical_in_optical(rotation_col_major, translation) -> np.ndarray:
    """Returns the pose of stream B's optical frame in stream A's optical frame from librealsense's
    A->B extrinsics (p_B = R p_A + t; rotation column-major as rs2_extrinsics stores it)."""
    r = np.asarray(rotation_col_major, np.float64).reshape(3, 3).T
    m = np.eye(4)
    m[:3, :3] = r.T
    m[:3, 3] = -r.T @ np.asarray(translation, np.float64)
    return m


def camera_transforms(base: str, optical_frames: dict[str, np.ndarray], parent: str = "",
                      mount_pose=(0.0,) * 6) -> list[tuple[str, str, np.ndarray]]:
    """Returns (parent, child, 4x4) transforms of a camera: `optical_frames` maps each optical frame to
    its pose in the first one's optical frame (the first stream's body frame coincides with `base`, as
    realsense-ros puts camera_link at the depth sensor)."""
    out = []
    if parent:
        out.append((parent, base, pose_matrix(mount_pose)))
    for optical, pose in optical_frames.items():
        body = OPTICAL @ pose @ np.linalg.inv(OPTICAL)     # base -> this stream's body frame
        out.append((base, stream_frame(optical), body))
        out.append((stream_frame(optical), optical, OPTICAL))
    return out


def to_msg(parent: str, child: str, m: np.ndarray, stamp) -> TransformStamped:
    t = TransformStamped()
    t.header.stamp, t.header.frame_id, t.child_frame_id = stamp, parent, child
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (float(x) for x in m[:3, 3])
    (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
     t.transform.rotation.w) = quaternion(m[:3, :3])
    return t


class StaticTf:
    """The node's /tf_static publisher; publish() replaces the node's whole set, as tf2's static
    broadcaster does (a late subscriber receives the last set)."""

    QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)

    def __init__(self, node):
        from tf2_msgs.msg import TFMessage    # tf2_msgs of ROS, or vendor/tf2_msgs built by `make build`
        self.node, self.msg_type = node, TFMessage
        self.pub = node.create_publisher(TFMessage, "/tf_static", self.QOS)
        self.last: list = []

    def publish(self, transforms: list[tuple[str, str, np.ndarray]]) -> bool:
        """Returns True when the set changed and was published."""
        key = [(p, c, np.round(m, 9).tolist()) for p, c, m in transforms]
        if key == self.last:
            return False
        self.last = key
        stamp = self.node.get_clock().now().to_msg()
        self.pub.publish(self.msg_type(transforms=[to_msg(p, c, m, stamp) for p, c, m in transforms]))
        return True
