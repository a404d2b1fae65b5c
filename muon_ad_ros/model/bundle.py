"""The model bundle format shared by training (which writes it) and the deployment (which reads it):
model.json with one ONNX file per retention level, its tensor names, the retention range and the
shipped default bundle. No torch: the style node imports this without the training code.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from muon_ad_ros.errors import ModelError

INPUT_NAME, OUTPUT_NAME = "image", "stylized"
MIN_RETENTION = 0.4
MULTIPLE, MIN_SIDE = 8, 64  # the student's input: sides multiples of 8, at least 64
MIN_SCALE = 0.25  # the smallest input scale a bundle may name
MODELS_ROOT = Path(__file__).resolve().parent.parent / "models"
PHOTOS_DIR = Path(__file__).resolve().parent.parent / "data"     # bundled photographs (data/SOURCES.md)


def default_model_dir() -> Path:
    """Returns the shipped default style bundle (models/DEFAULT names it, else the first bundle; a path
    without a bundle when none is shipped, which the backends then report as missing)."""
    named = MODELS_ROOT / "DEFAULT"
    if named.is_file():
        return MODELS_ROOT / named.read_text().strip()
    bundles = sorted(p.parent for p in MODELS_ROOT.glob("*/model.json"))
    return bundles[0] if bundles else MODELS_ROOT / "default"


@dataclass
class PruningInfo:
    """The pruning state a retention level runs with (from model.json)."""

    level: float
    retention_per_stage: list[float]
    context_groups: list[int]  # channel groups each global-context block runs with
    flops_fraction: float


def read_bundle(model_dir: str | Path) -> tuple[Path, dict]:
    """Return (directory, parsed model.json) after checking that every level's model file exists."""
    root = Path(model_dir)
    path = root / "model.json"
    if not root.is_dir():
        raise ModelError(f"model directory not found: {root}")
    if not path.is_file():
        raise ModelError(f"{path}: missing (a model bundle needs model.json)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
    levels = meta.get("levels") if isinstance(meta, dict) else None
    if not levels or not all(isinstance(lv, dict) and "retention" in lv and "onnx" in lv for lv in levels):
        raise ModelError(f"{path}: needs a non-empty 'levels' list of {{'retention', 'onnx', ...}}")
    for lv in levels:
        if not (root / lv["onnx"]).is_file():
            raise ModelError(f"{root / lv['onnx']}: missing (listed in {path} for retention {lv['retention']})")
    try:
        check_input_scale(input_scale(meta))
    except ValueError as exc:
        raise ModelError(f"{path}: input.scale {exc}") from None
    return root, meta


def input_scale(meta: dict) -> float:
    """Return the bundle's input scale: the factor frames are resized by before the network, which sets the
    size of the painted strokes relative to the frame (model.json "input": {"scale": ...}; 1.0 if absent)."""
    section = meta.get("input")
    return section.get("scale", 1.0) if isinstance(section, dict) else 1.0


def check_input_scale(scale) -> float:
    """Return `scale` as a float, or raise ValueError when it is not a number in [MIN_SCALE, 1.0] (a JSON
    boolean is not one, though Python counts it as an int)."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not MIN_SCALE <= scale <= 1.0:
        raise ValueError(f"must be a number in [{MIN_SCALE}, 1.0], got {scale!r}")
    return float(scale)


def network_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Return the (height, width) a frame is resized to before the network at this scale: sides rounded to
    multiples of 8 and at least 64, so no padding is needed; the frame's own size at scale 1."""
    if scale == 1.0:
        return height, width
    return (max(MIN_SIDE, round(height * scale / MULTIPLE) * MULTIPLE),
            max(MIN_SIDE, round(width * scale / MULTIPLE) * MULTIPLE))


def padded_size(height: int, width: int) -> tuple[int, int]:
    """Return the network's input size for a frame of height x width: each side padded up to a multiple of 8
    (at least 64)."""
    return max(MIN_SIDE, -(-height // MULTIPLE) * MULTIPLE), max(MIN_SIDE, -(-width // MULTIPLE) * MULTIPLE)


def engine_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Return the network's input shape for height x width frames at this input scale: what a fixed-shape
    model (a TensorRT engine) is built for."""
    return padded_size(*network_size(height, width, scale))


def to_network(rgb: np.ndarray, scale: float, dst: np.ndarray | None = None,
               frame_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Return the (H, W, 3) uint8 frame resized to network_size at this scale, or the frame itself when the size
    does not change. frame_hw: the frame size a fixed-shape network was built for (TensorRT engines); frames
    of any other size are resized to that size's network shape."""
    h, w = network_size(*(frame_hw or rgb.shape[:2]), scale)
    if (h, w) == rgb.shape[:2]:
        return rgb
    # down to half size bilinear's 2x2 taps still reach every input pixel, at 0.17 ms instead of area
    # averaging's 0.78 ms (640x480 -> 480x360, 2 cores); below that only area averaging does
    half = 2 * h >= rgb.shape[0] and 2 * w >= rgb.shape[1]
    return cv2.resize(rgb, (w, h), dst=dst, interpolation=cv2.INTER_LINEAR if half else cv2.INTER_AREA)


def from_network(out: np.ndarray, height: int, width: int, dst: np.ndarray | None = None) -> np.ndarray:
    """Return the network's (h, w, 3) uint8 output at the frame's height x width (bilinear), so overlays and
    detections stay aligned with the camera frame; the output itself when the size matches."""
    if out.shape[:2] == (height, width):
        return out
    return cv2.resize(out, (width, height), dst=dst, interpolation=cv2.INTER_LINEAR)


def level_for(levels, retention: float) -> float:
    """Returns the level of `levels` a retention runs at: the nearest level <= retention (the lowest if below)."""
    return max([lv for lv in levels if lv <= retention + 1e-6] or [min(levels)])


def check_retention(retention: float) -> float:
    """Return `retention` as a float, or raise ValueError when it is outside [MIN_RETENTION, 1.0]."""
    r = float(retention)
    if not (MIN_RETENTION - 1e-6 <= r <= 1.0 + 1e-6) or math.isnan(r):
        raise ValueError(f"retention must be in [{MIN_RETENTION}, 1.0], got {retention!r}")
    return min(1.0, max(MIN_RETENTION, r))
