"""Parameters of the style_transfer node (same names and defaults in config/edge.yaml)."""
from muon_ad_ros.params import Param
from muon_ad_ros.params.shared import COMPRESSED_PARAMS, TENSORRT_PARAMS, check_dla

PARAMS = (
    Param("model_dir", "", "Model bundle directory (model.json + ONNX per retention level); empty = the "
          "package's default style. A bad path is rejected at set time and the running model kept."),
    Param("backend", "onnxruntime", "Inference backend.", choices=("onnxruntime", "torch", "tensorrt")),
    Param("precision", "fp32", "Numeric precision (fp16 needs an fp16 export or TensorRT; int8 TensorRT only).",
          choices=("fp32", "fp16", "int8")),
    Param("threads", 0, "Intra-op threads of the CPU backends; 0 = one per core.", min=0, max=64),
    Param("retention", 1.0, "Fraction of channels kept (run-time pruning); the nearest exported level at or "
          "below it runs, switched without reloading.", min=0.4, max=1.0),
    Param("resolution_scale", 1.0, "Processing resolution as a fraction of the input, on top of the model "
          "bundle's own input scale (model.json); output is resized back to the input size so overlays stay "
          "aligned. The tensorrt backend takes 1 only (its engines have one input shape).", min=0.25, max=1.0),
    Param("engine_width", 640, "tensorrt: the frame width the engines are built for (one static shape; set "
          "the camera's). Frames of another size are resized to it and back, and diagnostics warn.",
          min=64, max=4096),
    Param("engine_height", 480, "tensorrt: the frame height the engines are built for (see engine_width).",
          min=64, max=4096),
    *TENSORRT_PARAMS,
    Param("calibration_dir", "", "tensorrt int8: folder of calibration images (jpg/png); empty = the "
          "package's bundled photographs."),
    Param("sched_priority", 80, "SCHED_FIFO priority of the inference thread; 0 = normal scheduling. "
          "When the OS refuses, the node runs normally and reports WARN.", min=0, max=99),
    Param("cpu_core", -1, "Pin the inference thread to this CPU core; -1 = no pinning.", min=-1, max=1023),
    Param("input_topics", ["image"], "Camera image topics to stylize (latest frame of each, round robin); "
          "output k goes to stylized/image_raw (k = 0) or stylized/image_raw_<k>.", read_only=True),
    Param("batch_streams", False, "With several input_topics: when the streams' latest frames wait together, run "
          "them in one network call (onnxruntime, torch): less CPU per frame, more memory for the batch's buffers. "
          "Worth it for cameras that deliver together (hardware-synchronised); others rarely do.", read_only=True),
    Param("max_image_dim", 4096, "Largest accepted image width or height; larger frames are rejected.",
          min=16, max=16384),
    Param("deadline_ms", 100.0, "Frames whose camera-to-output latency exceeds this are counted late.",
          min=0.0, max=10000.0),
    Param("stale_timeout", 2.0, "Seconds without input after which diagnostics report STALE.",
          min=0.1, max=60.0),
) + COMPRESSED_PARAMS


def check(values: dict) -> str | None:
    """Returns why the combination is inconsistent, or None."""
    if values["precision"] == "int8" and values["backend"] != "tensorrt":
        return "precision int8 needs backend tensorrt"
    reason = check_dla(values)
    if reason:
        return reason
    if not values["input_topics"]:
        return "input_topics must name at least one topic"
    return None
