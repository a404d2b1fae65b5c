"""Which TensorRT names the package uses, and whether a TensorRT release has them.

`collect()` walks the AST of every package module that imports `tensorrt` or the package's
`runtime/tensorrt_engine.py` and records each TensorRT class, method, attribute and enum member the code
reaches, as a path from the module: `("Builder", "()", "create_network", "()", "get_input", "()", "shape")`
(`"()"` is a call; calling a class gives an instance). Values are followed through local names, `self.`
attributes, parameter/return annotations naming `tensorrt.X` (under `TYPE_CHECKING`), and the annotated
functions of `tensorrt_engine.py` called from other modules. The module itself is any name bound by
`import tensorrt [as x]` in that file, and `trt` (the parameter name the package uses for it).

A use is optional (its absence does not fail the check) when the code detects the feature first:
inside or after an `if` whose test probes it with `hasattr(x, "name")` (directly or through a variable
assigned from such a test; "after" = the `if` body ends in raise/return), as `getattr(x, "name", default)`,
or inside a `try` that catches AttributeError. Methods a subclass of a TensorRT class defines are callbacks
TensorRT calls by name, so they must exist on the base class.

`check(trt, uses)` resolves each path against an imported release without a GPU: attributes by
`getattr`, calls through the return types in the pybind11 signatures. A path whose value is not a TensorRT
type (an int, a capsule) stops there and is counted as unresolved.

`python -m muon_ad_ros.bench.tensorrt_api` (`make check-tensorrt`) installs the PyPI bindings wheel of
each release in RELEASES into a cached venv, checks it, and exits 1 if a release lacks a required name.
PyPI's `tensorrt-*-libs` packages only redirect to pypi.nvidia.com, so libnvinfer, libnvonnxparser and
libnvinfer_plugin are replaced by a generated library exporting the symbols the bindings link against;
each aborts when called, and nothing calls them: importing and introspecting the bindings does not.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
REPO = PACKAGE.parent
CACHE = Path(os.path.expanduser("~")) / ".cache" / "muon_ad_ros" / "tensorrt"
CALL = "()"
ENGINE_MODULE = "tensorrt_engine"
ROOT_NAMES = ("trt",)
NUMPY = "numpy==2.4.6"   # requirements.txt's pin: the branch tests import the package's numpy code

# version -> (pip requirement of the bindings wheel, why this release)
RELEASES = {
    "8.6.1": ("tensorrt-bindings==8.6.1", "JetPack 6.0 ships 8.6.2; 8.6.1 is the nearest PyPI wheel"),
    "10.3.0": ("tensorrt-cu12-bindings==10.3.0", "JetPack 6.1/6.2 ship 10.3.0"),
    "10.16.1.11": ("tensorrt-cu12-bindings==10.16.1.11", "newest 10.x on PyPI"),
    "11.4.0.106": ("tensorrt-cu12-bindings==11.4.0.106", "newest 11.x on PyPI"),
}


@dataclass(frozen=True)
class Use:
    """One reach into TensorRT: the path from the module, whether feature detection guards it, where."""

    path: tuple
    optional: bool
    where: str

    @property
    def name(self) -> str:
        return dotted(self.path)


def dotted(path) -> str:
    """Returns a path as code-like text: ("Builder", "()", "x") -> "Builder().x"."""
    out = ""
    for step in path:
        out += step if step == CALL else (f".{step}" if out else step)
    return out


def parse_dotted(text: str) -> tuple:
    """Returns the path of dotted text ("IBuilderConfig().x" -> ("IBuilderConfig", "()", "x"))."""
    path = []
    for part in text.split("."):
        calls = part.count(CALL)
        path.append(part.replace(CALL, ""))
        path += [CALL] * calls
    return tuple(p for p in path if p)


# ---------------------------------------------------------------------------------------------- collector

def _imports(tree: ast.AST) -> tuple[set, bool]:
    """Returns (names bound to the tensorrt module, whether the file imports tensorrt_engine)."""
    aliases, engine = set(), False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "tensorrt":
                    aliases.add(a.asname or "tensorrt")
                engine |= a.name.split(".")[-1] == ENGINE_MODULE
        elif isinstance(node, ast.ImportFrom):
            engine |= (node.module or "").split(".")[-1] == ENGINE_MODULE
            engine |= any(a.name == ENGINE_MODULE for a in node.names)
    return aliases, engine


def touches_tensorrt(source: str) -> bool:
    """Returns whether a module imports tensorrt or the package's TensorRT engine module."""
    aliases, engine = _imports(ast.parse(source))
    return bool(aliases) or engine


def trt_modules(package: Path = PACKAGE) -> list[Path]:
    """Returns the package's .py files that touch TensorRT."""
    return sorted(p for p in package.rglob("*.py") if touches_tensorrt(p.read_text()))


def _is_exit(stmt: ast.stmt) -> bool:
    return isinstance(stmt, (ast.Raise, ast.Return, ast.Continue, ast.Break))


def _catches_attribute_error(handler: ast.ExceptHandler) -> bool:
    t = handler.type
    names = t.elts if isinstance(t, ast.Tuple) else [t]
    return any(isinstance(n, ast.Name) and n.id == "AttributeError" for n in names)


class _Collector:
    """The AST walk of one file; `returns` maps tensorrt_engine.py's annotated functions to result paths."""

    def __init__(self, path: Path, source: str, returns: dict):
        self.file = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        self.tree = ast.parse(source)
        aliases, _ = _imports(self.tree)
        self.roots = set(aliases) | set(ROOT_NAMES)
        self.module_aliases = self._engine_aliases()
        self.returns = returns                     # "te.func" / "func" -> path or tuple of paths
        self.uses: list[Use] = []
        self.local_returns = {}

    def _engine_aliases(self) -> set:
        names = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    if a.name == ENGINE_MODULE:
                        names.add(a.asname or a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[-1] == ENGINE_MODULE:
                        names.add(a.asname or a.name)
        return names

    # -- types from annotations
    def annotation(self, node) -> tuple | list | None:
        """Returns the instance path an annotation names (tuple[...] -> a list of element paths)."""
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "tuple":
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            return [self.annotation(e) for e in elts]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):   # X | None
            return self.annotation(node.left) or self.annotation(node.right)
        chain = []
        while isinstance(node, ast.Attribute):
            chain.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.roots and chain:
            return tuple(reversed(chain)) + (CALL,)
        return None

    def function_returns(self) -> dict:
        """Returns {function name: annotated TensorRT result} for this file's top-level functions."""
        out = {}
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                ann = self.annotation(node.returns)
                if ann:
                    out[node.name] = ann
        return out

    # -- the walk
    def run(self) -> list[Use]:
        self.local_returns = self.function_returns()
        self.block(self.tree.body, _Scope(self, {}, frozenset(), {}))
        return self.uses

    def record(self, path: tuple, node, scope, optional: bool = False):
        guarded = optional or scope.all_optional or any(path[:len(g)] == g for g in scope.guards)
        self.uses.append(Use(path, guarded, f"{self.file}:{node.lineno}"))

    def block(self, stmts, scope):
        scope = scope.child()
        for stmt in stmts:
            self.stmt(stmt, scope)
            if isinstance(stmt, ast.If) and not stmt.orelse and stmt.body and _is_exit(stmt.body[-1]):
                scope.guards = scope.guards | self.probes(stmt.test, scope)

    def stmt(self, stmt, scope):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.function(stmt, scope)
        elif isinstance(stmt, ast.ClassDef):
            self.klass(stmt, scope)
        elif isinstance(stmt, ast.If):
            probes = self.probes(stmt.test, scope)
            self.expr(stmt.test, scope)
            inner = scope.child(guards=scope.guards | probes)
            self.block(stmt.body, inner)
            self.block(stmt.orelse, inner)
        elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            body_scope = scope.child(all_optional=scope.all_optional
                                     or any(_catches_attribute_error(h) for h in stmt.handlers))
            self.block(stmt.body, body_scope)
            for h in stmt.handlers:
                self.block(h.body, scope)
            self.block(stmt.orelse, scope)
            self.block(stmt.finalbody, scope)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            value = stmt.value
            if value is not None:
                self.expr(value, scope)
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            result = self.resolve(value, scope) if value is not None else None
            if isinstance(stmt, ast.AnnAssign) and result is None:
                result = self.annotation(stmt.annotation)
            probes = self.probes(value, scope) if value is not None else frozenset()
            for t in targets:
                self.bind(t, result, scope, probes)
                if not isinstance(t, ast.Name):
                    self.expr(t, scope)
        elif isinstance(stmt, (ast.For, ast.While, ast.With)):
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.expr):
                    self.expr(child, scope)
            for name in ("body", "orelse"):
                self.block(getattr(stmt, name, []), scope)
        else:
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.expr):
                    self.expr(child, scope)
                elif isinstance(child, ast.stmt):
                    self.stmt(child, scope)

    def bind(self, target, result, scope, probes):
        if isinstance(target, ast.Name):
            if result is None and target.id in self.roots:
                return   # `trt, torch = _import()`: the name stays the module
            scope.names[target.id] = result
            if probes:
                scope.guard_vars[target.id] = probes
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
            if result is not None:
                scope.self_attrs[target.attr] = result
        elif isinstance(target, ast.Tuple):
            parts = result if isinstance(result, list) else [None] * len(target.elts)
            for t, r in zip(target.elts, parts + [None] * (len(target.elts) - len(parts))):
                self.bind(t, r, scope, frozenset())

    def function(self, node, scope, self_attrs=None):
        inner = _Scope(self, dict(scope.names), scope.guards, scope.self_attrs if self_attrs is None else self_attrs,
                       guard_vars=dict(scope.guard_vars), all_optional=scope.all_optional)
        args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
        for a in args:
            inner.names[a.arg] = self.annotation(a.annotation) or (() if a.arg in self.roots else None)
        for d in node.args.defaults + node.args.kw_defaults + node.decorator_list:
            if d is not None:
                self.expr(d, scope)
        self.block(node.body, inner)

    def klass(self, node, scope):
        bases = [self.resolve(b, scope) for b in node.bases]
        for b in node.bases:
            self.expr(b, scope)
        self_attrs: dict = {}
        methods = [s for s in node.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for base in bases:   # callbacks TensorRT invokes by name
            if base is not None and isinstance(base, tuple):
                for m in methods:
                    if not m.name.startswith("__"):
                        self.record(base + (CALL, m.name), m, scope)
        quiet = _Collector.__new__(_Collector)   # first pass: learn self.<attr> types, record nothing
        quiet.__dict__.update(self.__dict__, uses=[])
        for m in methods:
            quiet.function(m, scope, self_attrs)
        for stmt in node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.function(stmt, scope, self_attrs)
            else:
                self.stmt(stmt, scope)

    def probes(self, node, scope) -> frozenset:
        """Returns the paths a test expression probes with hasattr (also through guard variables)."""
        found = set()
        if node is None:
            return frozenset()
        for sub in ast.walk(node):
            if (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == "hasattr"
                    and len(sub.args) == 2 and isinstance(sub.args[1], ast.Constant)):
                base = self.resolve(sub.args[0], scope)
                if isinstance(base, tuple):
                    found.add(base + (sub.args[1].value,))
            elif isinstance(sub, ast.Name) and sub.id in scope.guard_vars:
                found |= scope.guard_vars[sub.id]
        return frozenset(found)

    def expr(self, node, scope):
        """Records every TensorRT reach inside an expression."""
        if isinstance(node, ast.IfExp):
            probes = self.probes(node.test, scope)
            self.expr(node.test, scope)
            inner = scope.child(guards=scope.guards | probes)
            self.expr(node.body, inner)
            self.expr(node.orelse, inner)
            return
        if isinstance(node, ast.BoolOp):
            inner = scope
            for value in node.values:
                self.expr(value, inner)
                inner = inner.child(guards=inner.guards | self.probes(value, inner))
            return
        if isinstance(node, (ast.Lambda, ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp)):
            inner = scope.child()
            for gen in getattr(node, "generators", []):
                self.expr(gen.iter, inner)
                self.bind(gen.target, None, inner, frozenset())
                for cond in gen.ifs:
                    self.expr(cond, inner)
            for part in ("elt", "key", "value", "body"):
                if isinstance(getattr(node, part, None), ast.expr):
                    self.expr(getattr(node, part), inner)
            return
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr") \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            base = self.resolve(node.args[0], scope)
            self.expr(node.args[0], scope)
            for a in node.args[2:]:
                self.expr(a, scope)
            if isinstance(base, tuple):
                optional = node.func.id == "hasattr" or len(node.args) > 2
                self.record(base + (node.args[1].value,), node, scope, optional)
            return
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value, scope)
            if isinstance(base, tuple):
                self.record(base + (node.attr,), node, scope)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child, scope)

    def resolve(self, node, scope):
        """Returns the TensorRT path an expression evaluates to (a list for a tuple result), else None."""
        if isinstance(node, ast.Name):
            if node.id in scope.names:
                return scope.names[node.id]
            return () if node.id in self.roots else None
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return scope.self_attrs.get(node.attr)
            base = self.resolve(node.value, scope)
            return base + (node.attr,) if isinstance(base, tuple) else None
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "getattr" and len(node.args) >= 2 \
                    and isinstance(node.args[1], ast.Constant):
                base = self.resolve(node.args[0], scope)
                return base + (node.args[1].value,) if isinstance(base, tuple) else None
            if isinstance(f, ast.Name) and f.id in self.local_returns and f.id not in scope.names:
                return self.local_returns[f.id]
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in self.module_aliases:
                return self.returns.get(f.attr)
            base = self.resolve(f, scope)
            return base + (CALL,) if isinstance(base, tuple) else None
        if isinstance(node, ast.Subscript):
            base = self.resolve(node.value, scope)
            if isinstance(base, list) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
                return base[node.slice.value] if node.slice.value < len(base) else None
        return None


class _Scope:
    def __init__(self, owner, names, guards, self_attrs, guard_vars=None, all_optional=False):
        self.owner, self.names, self.guards, self.self_attrs = owner, names, frozenset(guards), self_attrs
        self.guard_vars = guard_vars if guard_vars is not None else {}
        self.all_optional = all_optional

    def child(self, guards=None, all_optional=None):
        """A nested block: shares the bindings, adds guards."""
        s = _Scope(self.owner, self.names, self.guards if guards is None else guards, self.self_attrs,
                   self.guard_vars, self.all_optional if all_optional is None else all_optional)
        return s


def collect(paths=None, package: Path = PACKAGE) -> list[Use]:
    """Returns every TensorRT use in the given files (default: every package module touching TensorRT)."""
    paths = [Path(p) for p in (paths if paths is not None else trt_modules(package))]
    engine = package / "runtime" / f"{ENGINE_MODULE}.py"
    returns = {}
    if engine.is_file():
        returns = _Collector(engine, engine.read_text(), {}).function_returns()
    uses = []
    for p in paths:
        uses += _Collector(p, p.read_text(), returns).run()
    return uses


def merge(uses: list[Use]) -> dict[tuple, dict]:
    """Returns {path: {"optional": bool, "where": [...]}}: a path is required if any use of it is unguarded."""
    out: dict[tuple, dict] = {}
    for u in uses:
        entry = out.setdefault(u.path, {"optional": True, "where": []})
        entry["optional"] &= u.optional
        if u.where not in entry["where"]:
            entry["where"].append(u.where)
    return out


# ------------------------------------------------------------------------------------------------ checker

@dataclass
class Instance:
    """An instance of a TensorRT class (the check never constructs one: that needs libnvinfer)."""

    cls: type


_SIGNATURE = re.compile(r"->\s*(.+)$")
# "tensorrt_bindings.tensorrt.X", "tensorrt.X", or the C++ name 8.x gives some results ("nvinfer1::X")
_TRT_TYPE = re.compile(r"\btensorrt\w*\.tensorrt\.([A-Za-z_][\w.]*)|\btensorrt\.([A-Za-z_][\w.]*)|\bnvinfer1::(\w+)")


def _lookup_type(trt, dotted_name: str):
    obj = trt
    for part in dotted_name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, type) else None


def return_type(trt, fn):
    """Returns the TensorRT class a pybind11 function or property returns (from its signature), or None."""
    doc = getattr(getattr(fn, "fget", None) or fn, "__doc__", None) or ""
    name = getattr(fn, "__name__", "")
    kinds = set()
    for line in doc.splitlines():
        line = line.strip()
        stripped = re.sub(r"^\d+\.\s*", "", line)
        if (stripped.startswith(f"{name}(") or stripped.startswith("(")) and "->" in stripped:
            kinds.add(_SIGNATURE.search(stripped).group(1).strip())
    if len(kinds) != 1:
        return None
    m = _TRT_TYPE.search(kinds.pop())
    if not m:
        return None
    if m.group(3):   # the Python class may drop the C++ "I" prefix (8.6: IEngineInspector -> EngineInspector)
        return _lookup_type(trt, m.group(3)) or _lookup_type(trt, m.group(3)[1:])
    return _lookup_type(trt, m.group(1) or m.group(2))


class _Unresolved(Exception):
    pass


OPAQUE = object()   # a value whose type the signature does not name (an int, a str, a capsule)


def _step(trt, obj, step):
    """Returns the value one path step leads to; raises AttributeError when the name is absent and
    _Unresolved when the step is taken from a value of unknown type."""
    if obj is OPAQUE:
        raise _Unresolved()
    if step == CALL:
        if isinstance(obj, type):
            return Instance(obj)
        if isinstance(obj, Instance):
            return OPAQUE
        cls = return_type(trt, obj)
        return OPAQUE if cls is None else Instance(cls)
    if isinstance(obj, Instance):
        attr = getattr(obj.cls, step)   # AttributeError when absent
        if isinstance(attr, property):
            cls = return_type(trt, attr)
            return OPAQUE if cls is None else Instance(cls)
        return attr
    return getattr(obj, step)


@dataclass
class Result:
    """One release checked against the collected uses."""

    version: str
    checked: int = 0                                  # distinct paths
    present: int = 0
    unresolved: list = field(default_factory=list)    # paths going on from a value of unknown type
    missing: list = field(default_factory=list)       # required names absent: the check fails
    absent_optional: list = field(default_factory=list)  # feature-detected names absent: handled

    @property
    def ok(self) -> bool:
        return not self.missing


def check(trt, uses: list[Use]) -> Result:
    """Returns how a TensorRT module (or any module-like object) covers the collected uses."""
    res = Result(str(getattr(trt, "__version__", "?")))
    merged = merge(uses)
    missing: dict[tuple, dict] = {}
    for path, entry in sorted(merged.items(), key=lambda kv: (len(kv[0]), kv[0])):
        res.checked += 1
        obj = trt
        for i, step in enumerate(path):
            try:
                obj = _step(trt, obj, step)
            except AttributeError:
                at = path[:i + 1]
                m = missing.setdefault(at, {"optional": True, "where": []})
                m["optional"] &= entry["optional"]
                m["where"] += [w for w in entry["where"] if w not in m["where"]]
                break
            except _Unresolved:
                res.unresolved.append(dotted(path))
                break
        else:
            res.present += 1
    for at, m in missing.items():
        item = {"name": dotted(at), "where": m["where"]}
        (res.absent_optional if m["optional"] else res.missing).append(item)
    return res


# ------------------------------------------------------------------------------------- install and driver

def venv_dir(version: str) -> Path:
    return CACHE / version


def stub_dir(version: str) -> Path:
    return venv_dir(version) / "stub-libs"


def bindings_so(version: str) -> Path | None:
    found = sorted(venv_dir(version).glob("lib/python3*/site-packages/tensorrt_bindings/tensorrt*.so"))
    return found[0] if found else None


def installed(version: str) -> bool:
    """Returns whether the cached venv of a release is complete (bindings, numpy and the stub libraries)."""
    return (venv_dir(version) / ".complete").is_file()


def _run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def install(version: str) -> Path:
    """Creates the cached venv of a release (idempotent) and returns it."""
    requirement = RELEASES[version][0]
    root = venv_dir(version)
    if installed(version):
        return root
    _run([sys.executable, "-m", "venv", "--clear", root])
    _run([root / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", requirement, NUMPY])
    make_stub(version)
    (root / ".complete").write_text(requirement + "\n")
    return root


def make_stub(version: str) -> Path:
    """Writes the stand-in for the NVIDIA libraries the bindings link against (each function aborts)."""
    so = bindings_so(version)
    if so is None:
        raise RuntimeError(f"TensorRT {version}: no bindings module installed in {venv_dir(version)}")
    dyn = subprocess.run(["readelf", "-dW", str(so)], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\).*\[(libnv[^\]]+)\]", dyn)
    syms = subprocess.run(["readelf", "--dyn-syms", "-W", str(so)], capture_output=True, text=True,
                          check=True).stdout
    funcs = sorted({f[7] for f in (line.split() for line in syms.splitlines())
                    if len(f) >= 8 and f[6] == "UND" and f[3] == "FUNC" and f[4] == "GLOBAL"
                    and "@" not in f[7] and not f[7].startswith(("Py", "_Py"))})
    out = stub_dir(version)
    out.mkdir(parents=True, exist_ok=True)
    src = out / "stub.c"
    src.write_text("#include <stdio.h>\n#include <stdlib.h>\n" + "".join(
        f'void {f}(void) {{ fputs("stub TensorRT library: {f} called\\n", stderr); abort(); }}\n' for f in funcs))
    lib = out / "libnvstub.so"
    _run(["cc", "-shared", "-fPIC", "-o", lib, src])
    for name in needed:
        link = out / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(lib.name)
    return lib


def release_env(version: str) -> dict:
    """Returns the environment that imports a cached release: the stub libraries and this checkout."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = str(stub_dir(version))
    env["PYTHONPATH"] = str(REPO)
    env.pop("PYTHONHOME", None)
    return env


def run_in_release(version: str, code: str) -> subprocess.CompletedProcess:
    """Runs Python code in a cached release's venv (tensorrt_bindings importable)."""
    return subprocess.run([str(venv_dir(version) / "bin" / "python"), "-c", code], env=release_env(version),
                          capture_output=True, text=True, timeout=300)


def _check_here(plant: list[str]) -> dict:
    import importlib

    trt = importlib.import_module("tensorrt_bindings")
    uses = collect() + [Use(parse_dotted(p), False, "planted") for p in plant]
    return asdict(check(trt, uses)) | {"uses": len(uses)}


def summary_line(version: str, r: dict) -> str:
    return (f"TensorRT {version}: {'PASS' if not r['missing'] else 'FAIL'}  {r['checked']} names checked, "
            f"{r['present']} present, {len(r['missing'])} required missing, {len(r['absent_optional'])} "
            f"feature-detected absent, {len(r['unresolved'])} unresolved")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m muon_ad_ros.bench.tensorrt_api", description=__doc__.splitlines()[0])
    p.add_argument("command", nargs="?", default="all", choices=("all", "install", "collect", "check-here"),
                   help="all: install and check every release (default); collect: print the used names")
    p.add_argument("--versions", default=",".join(RELEASES), help="comma list of releases")
    p.add_argument("--plant", action="append", default=[],
                   help="add a used name, e.g. BuilderFlag.NO_SUCH_FLAG (shows the check failing)")
    p.add_argument("--out", default="", help="also write the results as JSON here")
    a = p.parse_args(argv)
    plant = a.plant + [s for s in os.environ.get("TRT_PLANT", "").split(",") if s]
    if a.command == "collect":
        for path, entry in sorted(merge(collect()).items()):
            print(f"{'optional' if entry['optional'] else 'required'}  {dotted(path):<60} {', '.join(entry['where'])}")
        return 0
    if a.command == "check-here":
        print(json.dumps(_check_here(plant)))
        return 0
    versions = [v for v in a.versions.split(",") if v]
    unknown = [v for v in versions if v not in RELEASES]
    if unknown:
        p.error(f"unknown release(s) {unknown}; known: {', '.join(RELEASES)}")
    for v in versions:
        install(v)
    if a.command == "install":
        return 0
    results, failed = {}, False
    for v in versions:
        args = ", ".join(repr(x) for x in plant)
        proc = run_in_release(v, "import json; from muon_ad_ros.bench.tensorrt_api import _check_here; "
                                 f"print(json.dumps(_check_here([{args}])))")
        if proc.returncode:
            print(f"TensorRT {v}: FAIL, the check itself failed:\n{proc.stderr}")
            failed = True
            continue
        r = results[v] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(summary_line(v, r))
        for m in r["missing"]:
            print(f"    required, missing: {m['name']}  ({', '.join(m['where'])})")
        for m in r["absent_optional"]:
            print(f"    feature-detected, absent: {m['name']}  ({', '.join(m['where'])})")
        failed |= bool(r["missing"])
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
