"""Declares a node's parameters from their muon_ad_ros.params description, validating every set."""
from __future__ import annotations

from typing import Any, Callable, Iterable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node

from muon_ad_ros.params import Param


def _descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(name=p.name, description=p.description, read_only=p.read_only)
    if p.choices:
        d.additional_constraints = f"one of {list(p.choices)}"
    if p.type is float and (p.min is not None or p.max is not None):
        d.floating_point_range = [FloatingPointRange(from_value=float(p.min if p.min is not None else -1e308),
                                                     to_value=float(p.max if p.max is not None else 1e308))]
    if p.type is int and (p.min is not None or p.max is not None):
        d.integer_range = [IntegerRange(from_value=int(p.min if p.min is not None else -2**62),
                                        to_value=int(p.max if p.max is not None else 2**62), step=0)]
    return d


def declare_params(node: Node, params: Iterable[Param], check: Callable[[dict], str | None] = lambda v: None,
                   on_change: Callable[[str, Any], None] | None = None) -> dict:
    """Returns a dict of current values kept up to date; every set is validated (type, range,
    choices, cross-check) and rejected with a reason, the old value kept."""
    params = tuple(params)
    by_name = {p.name: p for p in params}
    values: dict = {}
    for p in params:
        default = list(p.default) if p.type is list else p.default
        if p.type is list and not default:
            # An empty list gives ROS no type; declare it as a string array explicitly.
            from rclpy.parameter import Parameter
            value = node.declare_parameter(p.name, Parameter.Type.STRING_ARRAY, _descriptor(p)).value or []
        else:
            value = node.declare_parameter(p.name, default, _descriptor(p)).value
        if p.type is list:
            value = list(value or [])    # a params file's `[]` arrives as None (no type)
        reason = p.validate(value)
        if reason:
            raise ValueError(f"{node.get_name()}: startup value rejected: {reason}")
        values[p.name] = value
    reason = check(dict(values))
    if reason:
        raise ValueError(f"{node.get_name()}: startup parameters inconsistent: {reason}")

    def on_set(changes):
        proposed = dict(values)
        for c in changes:
            p = by_name.get(c.name)
            if p is None:
                continue
            v = list(c.value or []) if p.type is list else c.value
            reason = p.validate(v)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            proposed[c.name] = v
        reason = check(proposed)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        changed = [(k, proposed[k]) for k in proposed if proposed[k] != values.get(k)]
        values.update(proposed)
        if on_change:
            for k, v in changed:
                on_change(k, v)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
    return values
