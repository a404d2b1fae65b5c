"""The package's layers: an import graph (every import, also those inside functions) with no circle
and no import from a lower layer into a higher one; and the deployment boundary: the style node with
its ONNX Runtime backend loads neither torch nor any training module."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "muon_ad_ros"

# What each part may import (besides itself). Lower layers never reach up: the deployment (nodes,
# runtime, detect, camera, model) never imports training (train) or the programs above it.
ALLOWED = {
    "errors": set(), "params": set(), "msg": set(), "provenance": set(), "measure": set(), "distro": set(),
    "model": {"errors"},
    "runtime": {"errors", "model"},
    "camera": set(),
    "detect": {"errors", "runtime"},
    "train": {"errors", "model", "runtime", "measure", "provenance"},
    "nodes": {"errors", "params", "msg", "model", "runtime", "camera", "detect", "distro"},
    "graph": {"params", "distro"},
    "config_gen": {"params", "graph"},
    "launcher": {"graph", "params", "nodes", "camera", "msg", "measure", "distro"},
    "bench": {"errors", "params", "msg", "model", "runtime", "camera", "detect", "train", "nodes", "graph",
              "launcher", "measure", "provenance", "distro"},
    "cli": {"bench", "train", "camera", "launcher"},
}


def part(module: str) -> str:
    """Returns the layer of a module name."""
    rest = module.split(".")[1:]
    return rest[0] if rest else ""


def imports() -> dict[str, set[str]]:
    """Returns {module: muon_ad_ros modules it imports anywhere in its source}."""
    graph: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        mod = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        pkg = mod if rel.name == "__init__" else mod.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
        graph[mod] = {m for m in found if m.startswith("muon_ad_ros.") and m != mod}
    modules = set(graph)
    # keep only names that are modules (from x import y may name a function)
    return {m: {d for d in deps if d in modules} for m, deps in graph.items()}


def test_no_import_reaches_a_higher_layer():
    bad = []
    for mod, deps in imports().items():
        for dep in deps:
            a, b = part(mod), part(dep)
            if a != b and b not in ALLOWED.get(a, set()):
                bad.append(f"{mod} -> {dep}")
    assert not bad, "imports across layers that the layering forbids:\n" + "\n".join(sorted(bad))


def test_import_graph_has_no_circle():
    graph = imports()
    state: dict[str, int] = {}
    circles = []

    def visit(m, stack):
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if d.startswith(m + ".") or m.startswith(d + "."):
                continue        # a package and its own modules
            if state.get(d) == 1:
                circles.append(" -> ".join(stack[stack.index(d):] + [d]) if d in stack else f"{m} -> {d}")
            elif not state.get(d):
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if not state.get(m):
            visit(m, [m])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_style_node_with_onnxruntime_loads_no_torch_and_no_training_code():
    code = """
import json, sys
import numpy as np
import muon_ad_ros.nodes.style_transfer
from muon_ad_ros.model.bundle import default_model_dir
from muon_ad_ros.runtime.style import open_style_backend
b = open_style_backend("onnxruntime", default_model_dir(), threads=1)
b.infer(np.zeros((64, 64, 3), np.uint8), 0.7)
print(json.dumps(sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "muon_ad_ros.train",
                                                                                   "muon_ad_ros.bench")))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
