"""Parameter declarations of every node, free of ROS so the graph, the launch file, config/edge.yaml
and the tests read one source. Each node kind has a module here with PARAMS and check()."""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable

NODE_KINDS = ("realsense_camera", "csi_camera", "style_transfer", "detection", "controller")


@dataclass(frozen=True)
class Param:
    """One node parameter: its default fixes its type; min/max/choices bound it."""

    name: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    read_only: bool = False

    @property
    def type(self) -> type:
        """Returns the Python type every value of this parameter must have."""
        return type(self.default)

    def validate(self, value: Any) -> str | None:
        """Returns why `value` is not acceptable for this parameter, or None."""
        t = self.type
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if t is list:
            if not isinstance(value, (list, tuple)):
                return f"{self.name} must be a list, got {value!r}"
            if self.choices is not None:
                bad = [v for v in value if v not in self.choices]
                if bad:
                    return f"{self.name}: {bad!r} not among {list(self.choices)}"
            return None
        if not isinstance(value, t) or (t is not bool and isinstance(value, bool)):
            return f"{self.name} must be {t.__name__}, got {type(value).__name__} {value!r}"
        if t is float and not math.isfinite(value):
            return f"{self.name} must be finite, got {value!r}"
        if self.min is not None and value < self.min:
            return f"{self.name}={value!r} is below the minimum {self.min}"
        if self.max is not None and value > self.max:
            return f"{self.name}={value!r} is above the maximum {self.max}"
        if self.choices is not None and value not in self.choices:
            return f"{self.name}={value!r} is not one of {list(self.choices)}"
        return None


def node_params(kind: str) -> tuple[tuple[Param, ...], Callable[[dict], str | None]]:
    """Returns (PARAMS, check) of a node kind."""
    if kind not in NODE_KINDS:
        raise ValueError(f"unknown node kind {kind!r}; known: {NODE_KINDS}")
    mod = importlib.import_module(f"{__name__}.{kind}")
    return mod.PARAMS, getattr(mod, "check", lambda values: None)


def validate_all(kind: str, values: dict) -> str | None:
    """Returns the first reason `values` (a full or partial set) is unacceptable for `kind`, or None."""
    params, check = node_params(kind)
    by_name = {p.name: p for p in params}
    for name, value in values.items():
        if name not in by_name:
            return f"unknown parameter {name!r} for {kind}"
        reason = by_name[name].validate(value)
        if reason:
            return reason
    merged = {p.name: p.default for p in params} | dict(values)
    return check(merged)
