"""Parameters of the detection node (same names and defaults in config/edge.yaml). Every one but
`nice` takes effect on the next frame; a model reload runs in the background while the previous
detector keeps serving."""
from muon_ad_ros.params import Param
from muon_ad_ros.params.shared import COMPRESSED_PARAMS, TENSORRT_PARAMS, check_dla

PARAMS = (
    Param("backend", "onnxruntime", "Detector backend: onnxruntime (the bundled SSD MobileNet-v2 COCO, 80 "
          "classes, or a YOLO ONNX; CPU/CUDA), tensorrt (the same ONNX built to a cached engine, GPU/DLA; "
          "falls back to onnxruntime with WARN when TensorRT or the GPU is absent), opencv_dnn (the same SSD "
          "from its TensorFlow graph through OpenCV DNN, CPU) or opencv_hog (OpenCV's people detector; also "
          "what serves when the chosen model cannot load).",
          choices=("onnxruntime", "tensorrt", "opencv_dnn", "opencv_hog")),
    Param("model_path", "", "onnxruntime/tensorrt model: empty = the bundled SSD MobileNet-v2 COCO; else a "
          "YOLO .onnx or a prebuilt .engine/.plan (tensorrt). opencv_dnn and opencv_hog run their own and "
          "ignore it. A missing file is rejected at set time; a corrupt one is reported in diagnostics and "
          "the previous detector kept."),
    Param("labels_path", "", "Class names, one per line; empty = the model's metadata (Ultralytics `names`) "
          "or COCO for 80-class models."),
    Param("output_layout", "auto", "YOLO output layout: yolov5 (1,N,5+C), yolov8 (1,4+C,N), end2end (1,N,6) "
          "[x1,y1,x2,y2,score,class]; auto reads it from the output shape.",
          choices=("auto", "yolov5", "yolov8", "end2end")),
    Param("score_threshold", 0.5, "Minimum detection score (HOG: logistic of the SVM margin, 0.5 = margin 0).",
          min=0.0, max=1.0),
    Param("class_thresholds", [""], "Per-class minimum scores replacing score_threshold for those classes, "
          "as 'class:score' by name or id (e.g. ['person:0.4', 'car:0.6']); [''] = none."),
    Param("nms_threshold", 0.45, "IoU above which the lower-scored box of a class is suppressed.",
          min=0.0, max=1.0),
    Param("agnostic_nms_threshold", 0.7, "IoU above which the lower-scored of two boxes of different classes "
          "is suppressed (one object under two labels, e.g. car and truck); 1.0 = keep both.",
          min=0.0, max=1.0),
    Param("class_filter", [""], "Classes to publish, by name or id (e.g. ['person', '2']); [''] = all."),
    Param("input_size", 0, "Network input (square, multiple of 32) for dynamic-shape YOLO models; HOG: the "
          "image's longer side is resized to this before the scan (larger finds smaller people). "
          "0 = the model's own size (HOG: the image's).", min=0, max=4096),
    Param("max_detections", 100, "Most detections published per frame (highest scores first).",
          min=1, max=1000),
    Param("precision", "auto", "auto = fp16 on TensorRT; on onnxruntime the model's own, for the bundled SSD "
          "int8 on the CPU (its quantized file) and fp32 on CUDA; fp32 on opencv_dnn and HOG. fp16 converts an "
          "fp32 ONNX model; int8 needs tensorrt and calibration_dir, or onnxruntime's bundled SSD. Never silently "
          "ignored: an impossible combination is rejected.", choices=("auto", "fp32", "fp16", "int8")),
    Param("device", "auto", "onnxruntime: auto = CUDA when this onnxruntime has it, else CPU; gpu asks for "
          "CUDA (reports WARN when absent); cpu forces the CPU.", choices=("auto", "cpu", "gpu")),
    *TENSORRT_PARAMS,
    Param("calibration_dir", "", "tensorrt int8: folder of calibration images (jpg/png), preprocessed like "
          "camera frames."),
    Param("threads", 0, "Intra-op threads of onnxruntime / OpenCV; 0 = the library default.", min=0, max=64),
    Param("rate_limit", 12.0, "Most frames processed per second; 0 = every frame the worker can take "
          "(latest frame only). Frames arriving sooner are skipped and counted. 12: about 10 detections/s "
          "beside the style node on 2 cores at a 30 Hz camera (graph.DETECTION_RATE).", min=0.0, max=1000.0),
    Param("max_image_dim", 4096, "Largest accepted image width or height; larger frames are rejected.",
          min=16, max=16384),
    Param("stale_timeout", 2.0, "Seconds without input after which diagnostics report STALE.",
          min=0.1, max=60.0),
    Param("publish_annotated", True, "Publish detections/image_annotated while someone subscribes (a copy and a "
          "draw per frame)."),
    Param("marker_depth", 2.0, "Distance (m) in front of the camera at which RViz markers are drawn.",
          min=0.1, max=100.0),
    Param("nice", 5, "Nice value of the process (normal scheduling, below the style node's SCHED_FIFO); "
          "applied at start.", min=0, max=19, read_only=True),
) + COMPRESSED_PARAMS


def check(values: dict) -> str | None:
    """Returns why the combination is inconsistent, or None."""
    backend, precision, model = values["backend"], values["precision"], values["model_path"]
    if backend in ("opencv_hog", "opencv_dnn") and precision not in ("auto", "fp32"):
        return f"{backend} computes in fp32 only; precision {precision} cannot apply (set auto or fp32)"
    try:
        parse_class_thresholds(values["class_thresholds"])
    except ValueError as exc:
        return str(exc)
    if backend == "onnxruntime" and model and not model.lower().endswith(".onnx"):
        return f"backend onnxruntime needs an .onnx model_path, got {model!r}"
    if backend == "tensorrt" and model and not model.lower().endswith((".onnx", ".engine", ".plan")):
        return f"backend tensorrt needs an .onnx, .engine or .plan model_path, got {model!r}"
    if precision == "int8" and backend != "tensorrt" and not (backend == "onnxruntime" and not model):
        return ("precision int8 needs backend tensorrt, or onnxruntime's bundled SSD (model_path empty); "
                "onnxruntime runs other models in fp32/fp16 or as quantized")
    if precision == "int8" and backend == "tensorrt" and not values["calibration_dir"] and \
            (not model or model.lower().endswith(".onnx")):
        return "precision int8 needs calibration_dir (calibration images) to build the engine"
    reason = check_dla(values)
    if reason:
        return reason
    if backend in ("onnxruntime", "tensorrt") and values["input_size"] % 32:
        return f"input_size {values['input_size']} is not a multiple of 32 (the YOLO stride)"
    if backend == "opencv_dnn" and values["input_size"] not in (0, 300):
        return f"input_size {values['input_size']}: opencv_dnn's SSD has a fixed 300x300 input (set 0)"
    if backend == "opencv_hog" and 0 < values["input_size"] < 128:
        return f"input_size {values['input_size']} is below 128, the HOG window height"
    return None


def parse_class_thresholds(entries) -> tuple[tuple[str, float], ...]:
    """Returns ((class, score), ...) from 'name:score' strings (empty ones skipped); raises ValueError
    naming the entry that is not a class and a score in [0, 1]."""
    out = []
    for entry in entries:
        if not entry.strip():
            continue
        name, sep, score = entry.rpartition(":")
        try:
            value = float(score)
        except ValueError:
            value = -1.0
        if not sep or not name.strip() or not 0.0 <= value <= 1.0:
            raise ValueError(f"class_thresholds entry {entry!r} is not 'class:score' with a score in [0, 1]")
        out.append((name.strip(), value))
    return tuple(out)
