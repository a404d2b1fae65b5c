"""Parameters of the controller node, the graph's parameter server (same names in config/edge.yaml)."""
from muon_ad_ros.params import Param

PARAMS = (
    Param("mode", "manual", "manual: push retention/resolution_scale as set here; target_fps: closed loop on "
          "the stylized frame rate (and latency); depth_lod: nearer scene content keeps more channels (the "
          "only mode that subscribes to depth).",
          choices=("manual", "target_fps", "depth_lod")),
    Param("retention", 1.0, "Manual retention pushed to the style node.", min=0.4, max=1.0),
    Param("resolution_scale", 1.0, "Manual processing resolution pushed to the style node.", min=0.25, max=1.0),
    Param("target_fps", 24.0, "Stylized frame rate to hold in target_fps mode.", min=1.0, max=240.0),
    Param("target_latency_ms", 0.0, "Camera-to-stylized p50 latency to hold as well; 0 = off.",
          min=0.0, max=5000.0),
    Param("retention_min", 0.4, "Lowest retention the closed loop may set.", min=0.4, max=1.0),
    Param("retention_max", 1.0, "Highest retention the closed loop may set.", min=0.4, max=1.0),
    Param("resolution_min", 0.5, "Lowest resolution_scale the loop uses after retention is at its minimum.",
          min=0.25, max=1.0),
    Param("step", 0.1, "Retention change per control period while the style model's levels are unknown "
          "(with them, from its pruning_state, the loop moves one level at a time).", min=0.01, max=0.6),
    Param("hysteresis", 0.1, "Relative band around the target inside which nothing changes.", min=0.0, max=0.5),
    Param("period", 1.0, "Control period in seconds.", min=0.1, max=10.0),
    Param("restore_periods", 3, "target_fps: consecutive control periods with headroom before quality is raised "
          "one step; doubled (up to 32) each time a raise is undone within that many periods, halved back "
          "after a raise that holds.", min=1, max=32),
    Param("detection_rate_max", 12.0, "Detection rate_limit the controller holds while its loop has not lowered "
          "it (the graph's detection rate); 0 = every frame detection can take.", min=0.0, max=1000.0),
    Param("detection_rate_min", 2.0, "Detection rate_limit floor the loop may set when style is already at "
          "its lowest (style degrades before detection).", min=0.5, max=60.0),
    Param("depth_near_m", 0.5, "depth_lod: content at or nearer than this keeps retention_max.", min=0.05, max=20.0),
    Param("depth_far_m", 4.0, "depth_lod: content at or beyond this gets retention_min.", min=0.1, max=50.0),
    Param("style_node", "style_transfer", "Name of the style node whose parameters are set.", read_only=True),
    Param("detection_node", "detection", "Name of the detection node whose rate_limit is set; empty = none.",
          read_only=True),
)


def check(values: dict) -> str | None:
    """Returns why the combination is inconsistent, or None."""
    if values["retention_min"] > values["retention_max"]:
        return f"retention_min {values['retention_min']} > retention_max {values['retention_max']}"
    if values["depth_near_m"] >= values["depth_far_m"]:
        return f"depth_near_m {values['depth_near_m']} must be < depth_far_m {values['depth_far_m']}"
    return None
