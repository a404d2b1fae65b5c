"""pyrealsense2, imported after the ROS 2 client library when one is installed.

The pyrealsense2 wheel carries librealsense with its own statically linked Fast-DDS (for realdds).
C++ unique symbols (function-local statics, singletons) bind process-wide whatever the dlopen
flags, so whichever copy loads first serves both. Measured here: with pyrealsense2 loaded before
rclpy, a process that runs a node segfaults in its exit handlers (exit code -11, also pytest's),
and a test subscriber in such a process missed a node's messages. With rclpy loaded first neither
happened. Every module of this package imports pyrealsense2 through here."""
try:
    import rclpy  # noqa: F401  (load order only)
except ImportError:   # no ROS 2 here: nothing to keep apart
    pass

import pyrealsense2 as rs  # noqa: E402

__all__ = ["rs"]
