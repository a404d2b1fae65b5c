"""ROS-free camera sources: a RealSense device or recording (pyrealsense2), OpenCV sources (GStreamer,
V4L2, video file, image folder), calibration files, and the recording made from bundled photographs.

pyrealsense2 is imported only by `realsense` and `recording` (through `librealsense`, which loads
rclpy first when installed), so OpenCV sources work without it."""
