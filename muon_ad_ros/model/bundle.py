"""The model bundle format shared by training (which writes it) and the deployment (which reads it):
model.json with one ONNX file per retention level, its tensor names, the retention range and the
shipped default bundle. No torch: the style node imports this without the training code.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from muon_ad_ros.errors import ModelError

INPUT_NAME, OUTPUT_NAME = "image", "stylized"
MIN_RETENTION = 0.4
MULTIPLE, MIN_SIDE = 8, 64  # the student's input: sides multiples of 8, at least 64
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
    return root, meta




def level_for(levels, retention: float) -> float:
    """Returns the level of `levels` a retention runs at: the nearest level <= retention (the lowest if below)."""
    return max([lv for lv in levels if lv <= retention + 1e-6] or [min(levels)])


def check_retention(retention: float) -> float:
    """Return `retention` as a float, or raise ValueError when it is outside [MIN_RETENTION, 1.0]."""
    r = float(retention)
    if not (MIN_RETENTION - 1e-6 <= r <= 1.0 + 1e-6) or math.isnan(r):
        raise ValueError(f"retention must be in [{MIN_RETENTION}, 1.0], got {retention!r}")
    return min(1.0, max(MIN_RETENTION, r))
