"""The camera nodes' parameter cross-checks (no ROS needed): impossible combinations are rejected
with a reason that names them; sensible ones pass."""
import pytest

from muon_ad_ros.params import validate_all


@pytest.mark.parametrize("kind, values, reason", [
    ("realsense_camera", {"serial": "123", "recording": "/r/a.db3"}, "not both"),
    ("realsense_camera", {"recording": "/r/a.mp4"}, "must be a .db3 or .bag"),
    ("realsense_camera", {"enable_depth": False}, "align_depth needs enable_depth"),
    ("realsense_camera", {"color_frame_id": ""}, "color_frame_id must not be empty"),
    ("realsense_camera", {"fps": 0.0}, "below the minimum"),
    ("realsense_camera", {"width": 8}, "below the minimum"),
    ("realsense_camera", {"loop": "yes"}, "must be bool"),
    ("csi_camera", {"calibration_file": "/c/cam.txt"}, "must be a .yaml file"),
    ("csi_camera", {"frame_id": ""}, "frame_id must not be empty"),
    ("csi_camera", {"sensor_id": 9}, "above the maximum"),
    ("csi_camera", {"fps": 30}, None),          # an int where a float is declared is accepted
])
def test_inconsistent_values_are_rejected_with_a_reason(kind, values, reason):
    got = validate_all(kind, values)
    assert (got is None) if reason is None else (reason in (got or "")), got


@pytest.mark.parametrize("kind, values", [
    ("realsense_camera", {}),
    ("realsense_camera", {"recording": "/r/a.bag", "loop": False, "realtime": False}),
    ("realsense_camera", {"serial": "123456789012", "enable_depth": False, "align_depth": False}),
    ("csi_camera", {}),
    ("csi_camera", {"source": "/dev/video1", "calibration_file": "/c/cam.yml"}),
])
def test_consistent_values_pass(kind, values):
    assert validate_all(kind, values) is None
