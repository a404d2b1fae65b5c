"""Writes config/edge.yaml and docs/parameters.md from the parameter declarations
(python -m muon_ad_ros.config_gen), so both document every parameter with its default, range and meaning
and never drift from the nodes."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import yaml

from muon_ad_ros.params import NODE_KINDS, node_params

HEADER = """\
# Parameters of every muon_ad_ros node with their defaults. Generated from muon_ad_ros/params/*.py by
# `python -m muon_ad_ros.config_gen`; edit those files, not this one (a test checks they agree).
# The launch file applies this file first and the launch arguments' settings after it.
# Keys match the node in any namespace (/**/<node>).
"""


def render() -> str:
    """Returns the text of config/edge.yaml."""
    out = [HEADER]
    for kind in NODE_KINDS:
        params, _ = node_params(kind)
        out.append(f"/**/{kind}:\n  ros__parameters:")
        for p in params:
            bounds = []
            if p.min is not None or p.max is not None:
                bounds.append(f"range [{p.min}, {p.max}]")
            if p.choices:
                bounds.append(f"one of {list(p.choices)}")
            if p.read_only:
                bounds.append("read-only")
            doc = p.description + (f" ({'; '.join(bounds)})" if bounds else "")
            for line in textwrap.wrap(doc, 96):
                out.append(f"    # {line}")
            value = yaml.safe_dump({p.name: p.default}, default_flow_style=True, width=1000).strip()[1:-1]
            out.append(f"    {value}")
        out.append("")
    return "\n".join(out)


def markdown_tables() -> str:
    """Returns one Markdown table of parameters per node."""
    out = []
    for kind in NODE_KINDS:
        params, _ = node_params(kind)
        out += [f"**{kind}**", "", "| parameter | default | range / choices | meaning |", "|---|---|---|---|"]
        for p in params:
            bounds = ", ".join(filter(None, [
                f"[{p.min}, {p.max}]" if p.min is not None or p.max is not None else "",
                " / ".join(map(str, p.choices)) if p.choices else "", "read-only" if p.read_only else ""]))
            default = "`" + yaml.safe_dump(p.default, default_flow_style=True).strip().removesuffix("...").strip() + "`"
            out.append(f"| `{p.name}` | {default} | {bounds} | {p.description.replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


def parameters_page() -> str:
    """Returns docs/parameters.md: every node's parameters as tables."""
    return ("# Parameters\n\n"
            "Every parameter of every node, generated from `muon_ad_ros/params/*.py` by "
            "`python -m muon_ad_ros.config_gen` (a test keeps this page, `config/edge.yaml` and the nodes equal). "
            "Each is declared with its range or choices and validated when set: a wrong type, an out-of-range "
            "value or an inconsistent combination is rejected with the reason, and the previous value kept. "
            "`config/edge.yaml` holds the same defaults as a parameters file; the launch file applies it "
            "first (or `params_file:=...`) and the launch arguments after it.\n\n"
            f"{markdown_tables()}\n")


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if "--markdown" in argv:
        print(markdown_tables())
        return 0
    root = Path(__file__).resolve().parent.parent
    path = root / "config" / "edge.yaml"
    path.write_text(render())
    page = root / "docs" / "parameters.md"
    page.write_text(parameters_page())
    print(f"wrote {path} and {page}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
