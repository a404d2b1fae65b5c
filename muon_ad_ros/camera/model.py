"""The fields of sensor_msgs/CameraInfo without ROS, from RealSense intrinsics or a calibration YAML
in the camera_calibration / camera_info_manager format."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

IDENTITY3 = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
# Coefficient counts of the distortion models ROS's image_geometry understands.
DISTORTION_SIZES = {"plumb_bob": (5,), "rational_polynomial": (8,), "equidistant": (4,)}


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics in CameraInfo's layout: K (3x3), D, R (3x3) and P (3x4) row-major."""

    width: int
    height: int
    k: tuple[float, ...]
    d: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    distortion_model: str = "plumb_bob"
    r: tuple[float, ...] = IDENTITY3
    p: tuple[float, ...] = ()
    name: str = ""

    def __post_init__(self):
        if not self.p:
            fx, _, cx, _, fy, cy = self.k[:6]
            object.__setattr__(self, "p", (fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0))
        for name, size in (("k", 9), ("r", 9), ("p", 12)):
            values = getattr(self, name)
            if len(values) != size or not all(math.isfinite(v) for v in values):
                raise ValueError(f"camera model {self.name!r}: {name} needs {size} finite numbers, got {values!r}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera model {self.name!r}: image size {self.width}x{self.height} must be positive")
        if self.k[0] <= 0 or self.k[4] <= 0:
            raise ValueError(f"camera model {self.name!r}: focal lengths fx={self.k[0]} fy={self.k[4]} must be > 0")

    @classmethod
    def pinhole(cls, width: int, height: int, fx: float, fy: float, cx: float, cy: float,
                d=(0.0, 0.0, 0.0, 0.0, 0.0), distortion_model: str = "plumb_bob", name: str = "") -> "CameraModel":
        """Returns a model from focal lengths and principal point (pixels)."""
        k = (float(fx), 0.0, float(cx), 0.0, float(fy), float(cy), 0.0, 0.0, 1.0)
        return cls(int(width), int(height), k, tuple(float(v) for v in d), distortion_model, name=name)

    def scaled(self, width: int, height: int) -> "CameraModel":
        """Returns this model for images resized to width x height (same aspect ratio required)."""
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        if abs(sx - sy) > 0.01 * max(sx, sy):
            raise ValueError(f"calibration {self.name!r} is for {self.width}x{self.height}; frames of {width}x{height} "
                             "have another aspect ratio, so it cannot be scaled to them")

        def scale(m, cols):
            out = list(m)
            for c in range(cols):
                out[c] *= sx
                out[cols + c] *= sy
            return tuple(out)
        return replace(self, width=width, height=height, k=scale(self.k, 3), p=scale(self.p, 4))


def _matrix(doc: dict, key: str, rows: int | None, cols: int | None, path: Path) -> tuple[float, ...]:
    entry = doc.get(key)
    if not isinstance(entry, dict) or "data" not in entry:
        raise ValueError(f"{path}: '{key}' must be a mapping with rows, cols and data")
    data = entry["data"]
    r, c = entry.get("rows", rows), entry.get("cols", cols)
    if (rows is not None and r != rows) or (cols is not None and c != cols):
        raise ValueError(f"{path}: '{key}' is {r}x{c}, expected {rows}x{cols}")
    if not isinstance(data, list) or len(data) != r * c:
        raise ValueError(f"{path}: '{key}' data has {len(data) if isinstance(data, list) else data!r} values, "
                         f"expected rows*cols = {r * c}")
    try:
        return tuple(float(v) for v in data)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: '{key}' data must be numbers, got {data!r}") from None


def load_calibration(path: str | Path) -> CameraModel:
    """Returns the camera model stored in a camera_calibration / camera_info_manager YAML file."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read calibration file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"calibration file {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"calibration file {path} must hold a mapping, got {type(doc).__name__}")
    for key in ("image_width", "image_height", "camera_matrix"):
        if key not in doc:
            raise ValueError(f"calibration file {path} lacks '{key}'")
    width, height = doc["image_width"], doc["image_height"]
    if not isinstance(width, int) or not isinstance(height, int):
        raise ValueError(f"{path}: image_width/image_height must be integers, got {width!r}/{height!r}")
    model = str(doc.get("distortion_model", "plumb_bob"))
    d = _matrix(doc, "distortion_coefficients", 1, None, path) if "distortion_coefficients" in doc else ()
    if model not in DISTORTION_SIZES:
        raise ValueError(f"{path}: distortion_model {model!r} is not one of {sorted(DISTORTION_SIZES)}")
    if d and len(d) not in DISTORTION_SIZES[model]:
        raise ValueError(f"{path}: {model} needs {DISTORTION_SIZES[model][0]} distortion coefficients, got {len(d)}")
    return CameraModel(
        width=width, height=height, k=_matrix(doc, "camera_matrix", 3, 3, path),
        d=d or (0.0,) * DISTORTION_SIZES[model][0], distortion_model=model,
        r=_matrix(doc, "rectification_matrix", 3, 3, path) if "rectification_matrix" in doc else IDENTITY3,
        p=_matrix(doc, "projection_matrix", 3, 4, path) if "projection_matrix" in doc else (),
        name=str(doc.get("camera_name", path.stem)))


def save_calibration(model: CameraModel, path: str | Path) -> Path:
    """Returns the path after writing `model` in the camera_info_manager YAML format."""
    def mat(rows, cols, data):
        return {"rows": rows, "cols": cols, "data": [float(v) for v in data]}
    doc = {"image_width": model.width, "image_height": model.height, "camera_name": model.name or "camera",
           "camera_matrix": mat(3, 3, model.k), "distortion_model": model.distortion_model,
           "distortion_coefficients": mat(1, len(model.d), model.d),
           "rectification_matrix": mat(3, 3, model.r), "projection_matrix": mat(3, 4, model.p)}
    path = Path(path)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
