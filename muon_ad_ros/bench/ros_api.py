"""Every rclpy, launch and launch_ros name the package uses, checked against ROS 2 Humble's API, and the graph's
Fast DDS profile against Fast DDS 2.6 (Humble's), without a Humble install.

`generate` reads the humble branches of ros2/rclpy, ros2/launch and ros2/launch_ros and the 2.6.x branch of
eProsima/Fast-DDS from git mirrors (the search tool's `fetch` makes them: /work/.mirror/<owner>+<name>/repo) and
writes HUMBLE_API: the API surface as data (each module's names, each class's bases, members and instance
attributes, each function's parameters and annotated return type; from the sources' AST, nothing imported),
Fast DDS 2.6's profile schema (the element tree of resources/xsd/fastRTPS_profiles.xsd with attributes and
enumerations) and the environment variables its sources name, with the commit of every source.

`check` collects the uses in the package's sources (muon_ad_ros/, launch/, scripts/, test/): imported module
paths and names, attributes reached on modules, classes and instances (types followed through local names,
`self.` attributes, parameter and return annotations, the package's own functions and classes, and classes
deriving from an rclpy or launch class), and the keyword arguments of every call to an rclpy/launch callable
(through `**kwargs` passed on to a base class's `__init__`). A use inside a `try` that catches ImportError or
AttributeError is feature-detected: its absence is allowed. An attribute reached on a value of unknown type is
checked by name: a name that the installed rclpy/launch has and Humble's has nowhere is reported. The profile's
elements, attributes and enumerated values are checked against the schema, and the profile variable the graph
sets for a Fast DDS that reads 2.6's variables must be one of them.

`make check-humble-api` runs the check (PLANT='code' adds a line of code to the checked sources, to show it
failing); test/distro/test_humble_api.py runs it in the suite.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
REPO = PACKAGE.parent
HUMBLE_API = PACKAGE / "bench" / "data" / "humble_api.json"
TRACKED = ("rclpy", "launch", "launch_ros")
# package -> (repository, ref, folder of the package in it)
SOURCES = {"rclpy": ("ros2/rclpy", "humble", "rclpy/rclpy"),
           "launch": ("ros2/launch", "humble", "launch/launch"),
           "launch_ros": ("ros2/launch_ros", "humble", "launch_ros/launch_ros")}
FASTDDS = ("eProsima/Fast-DDS", "2.6.x", "resources/xsd/fastRTPS_profiles.xsd")
FASTDDS_PARSER = "src/cpp/rtps/xmlparser/XMLParserCommon.cpp"    # the names the XML parser reads
PARSER_NAME = re.compile(r'^const char\* [A-Z_0-9]+ = "([A-Za-z_][A-Za-z_0-9]*)";', re.M)
ENV_NAME = re.compile(r'"((?:FASTDDS|FASTRTPS|ROS)_[A-Z0-9_]+|SKIP_DEFAULT_XML_FILE)"')
GUARD_EXCEPTIONS = {"ImportError", "ModuleNotFoundError", "AttributeError"}


# ------------------------------------------------------------------------------------------------- surface

def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


def _annotation_text(node) -> str | None:
    """Returns the one class an annotation names (Optional[X], Union[X, None], X | None, 'X'), as dotted text."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return _annotation_text(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [s for s in (node.left, node.right) if not (isinstance(s, ast.Constant) and s.value is None)]
        return _annotation_text(sides[0]) if len(sides) == 1 else None
    if isinstance(node, ast.Subscript) and _dotted(node.value) in ("Optional", "typing.Optional", "Union",
                                                                   "typing.Union"):
        elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        elts = [e for e in elts if not (isinstance(e, ast.Constant) and e.value is None)]
        return _annotation_text(elts[0]) if len(elts) == 1 else None
    return _dotted(node)


def _function(node: ast.FunctionDef, module: str) -> dict:
    a = node.args
    kwargs_to_super = any(isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr == "__init__"
                          and isinstance(c.func.value, ast.Call) and _dotted(c.func.value.func) == "super"
                          and any(k.arg is None for k in c.keywords) for c in ast.walk(node))
    return {"kind": "function", "module": module,
            "params": [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs],
            "varargs": a.vararg is not None, "varkw": a.kwarg is not None,
            "returns": _annotation_text(node.returns), "kwargs_to_super": kwargs_to_super,
            "property": any(_dotted(d) == "property" for d in node.decorator_list)}


def _resolve_import(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _scan_block(stmts, module: str, is_package: bool, names: dict, symbols: dict, prefix: str):
    for stmt in stmts:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[stmt.name] = f"{prefix}.{stmt.name}"
            symbols[f"{prefix}.{stmt.name}"] = _function(stmt, module)
        elif isinstance(stmt, ast.ClassDef):
            q = f"{prefix}.{stmt.name}"
            names[stmt.name] = q
            members: dict = {}
            attrs = set()
            _scan_block(stmt.body, module, is_package, members, symbols, q)
            for sub in ast.walk(stmt):
                if isinstance(sub, (ast.Assign, ast.AnnAssign)):
                    for t in (sub.targets if isinstance(sub, ast.Assign) else [sub.target]):
                        for el in (t.elts if isinstance(t, ast.Tuple) else [t]):
                            if isinstance(el, ast.Attribute) and _dotted(el.value) == "self":
                                attrs.add(el.attr)
            symbols[q] = {"kind": "class", "module": module, "bases": [_dotted(b) for b in stmt.bases if _dotted(b)],
                          "members": members, "attrs": sorted(attrs)}
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]):
                for el in (t.elts if isinstance(t, ast.Tuple) else [t]):
                    if isinstance(el, ast.Name):
                        q = f"{prefix}.{el.id}"
                        names[el.id] = q
                        value = stmt.value
                        symbols[q] = {"kind": "value", "module": module,
                                      "type": _dotted(value.func) if isinstance(value, ast.Call) else None}
        elif isinstance(stmt, ast.Import):
            for a in stmt.names:
                if a.asname:
                    names[a.asname] = a.name
                else:
                    names.setdefault(a.name.split(".")[0], a.name.split(".")[0])
        elif isinstance(stmt, ast.ImportFrom):
            base = _resolve_import(module, is_package, stmt)
            for a in stmt.names:
                if a.name != "*":
                    names[a.asname or a.name] = f"{base}.{a.name}"
        elif isinstance(stmt, (ast.If, ast.Try, ast.With)) or type(stmt).__name__ == "TryStar":
            for block in ("body", "orelse", "finalbody"):
                _scan_block(getattr(stmt, block, []), module, is_package, names, symbols, prefix)
            for h in getattr(stmt, "handlers", []):
                _scan_block(h.body, module, is_package, names, symbols, prefix)


class Surface:
    """An API surface: {qualified name: entry}; modules, classes, functions and values."""

    def __init__(self, symbols: dict):
        self.symbols = symbols

    @classmethod
    def from_sources(cls, modules: dict[str, tuple[str, bool]]) -> "Surface":
        """Builds the surface of {module name: (source, is a package)}; annotations and bases are resolved to
        qualified names once every module is read."""
        symbols: dict = {}
        for mod, (src, is_pkg) in modules.items():
            names: dict = {}
            _scan_block(ast.parse(src).body, mod, is_pkg, names, symbols, mod)
            symbols[mod] = {"kind": "module", "names": names}
        for mod in modules:                       # a package's submodules are its attributes once imported
            parent, _, last = mod.rpartition(".")
            if parent in symbols:
                symbols[parent]["names"].setdefault(last, mod)
        surface = cls(symbols)
        for q, e in symbols.items():
            if e["kind"] == "class":
                e["bases"] = [surface.resolve_text(e["module"], b) or b for b in e["bases"]]
            elif e["kind"] == "function" and e["returns"]:
                e["returns"] = surface.resolve_text(e["module"], e["returns"])
            elif e["kind"] == "value" and e.get("type"):
                e["type"] = surface.resolve_text(e["module"], e["type"])
        return surface

    @classmethod
    def from_installed(cls, packages=TRACKED) -> "Surface":
        """Builds the surface of the importable rclpy/launch/launch_ros (their sources, nothing imported)."""
        modules = {}
        for pkg in packages:
            spec = importlib.util.find_spec(pkg)
            if spec is None or not spec.submodule_search_locations:
                continue
            root = Path(list(spec.submodule_search_locations)[0])
            for path in root.rglob("*.py"):
                rel = path.relative_to(root.parent).with_suffix("")
                is_pkg = rel.name == "__init__"
                mod = ".".join(rel.parts[:-1] if is_pkg else rel.parts)
                modules[mod] = (path.read_text(errors="replace"), is_pkg)
        return cls.from_sources(modules)

    def resolve_text(self, module: str, text: str) -> str | None:
        """Returns the qualified name dotted text means inside `module`."""
        first, *rest = text.split(".")
        names = self.symbols.get(module, {}).get("names", {})
        if first in names:
            q = names[first]
        elif first in self.symbols:
            q = first
        else:
            return None
        for part in rest:
            q = self.member(q, part)
            if q is None:
                return None
        return self.canonical(q)

    def canonical(self, q: str, depth: int = 0) -> str:
        """Follows re-exports (`from rclpy.qos import QoSProfile` in rclpy.node) to the defining name."""
        if q in self.symbols or depth > 20:
            return q
        parent, _, last = q.rpartition(".")
        if not parent:
            return q
        p = self.canonical(parent, depth + 1)
        e = self.symbols.get(p)
        if e is not None and e["kind"] == "module" and last in e["names"] and e["names"][last] != q:
            return self.canonical(e["names"][last], depth + 1)
        return f"{p}.{last}"

    def entry(self, q: str | None) -> dict | None:
        return None if q is None else self.symbols.get(self.canonical(q))

    def mro(self, q: str) -> list[str]:
        """Returns a class and its known bases, depth first."""
        out, todo = [], [self.canonical(q)]
        while todo:
            c = todo.pop(0)
            e = self.symbols.get(c)
            if c in out or e is None or e["kind"] != "class":
                continue
            out.append(c)
            todo += [self.canonical(b) for b in e["bases"]]
        return out

    def tracked(self, q: str) -> bool:
        return q.split(".")[0] in TRACKED

    def member(self, q: str, name: str, instance: bool = False) -> str | None:
        """Returns the qualified name of attribute `name` of module/class `q` (of its instances with
        `instance`), or None when it has none. Bases outside the surface make the answer unknown: '?'."""
        q = self.canonical(q)
        e = self.symbols.get(q)
        if e is None:
            return "?"
        if e["kind"] == "module":
            return e["names"].get(name)
        if e["kind"] != "class":
            return "?"
        unknown_base = False
        for c in self.mro(q):
            ce = self.symbols[c]
            if name in ce["members"]:
                return self.canonical(ce["members"][name])
            if instance and name in ce["attrs"]:
                return f"{c}.{name}"
            unknown_base |= any(self.canonical(b) not in self.symbols for b in ce["bases"] if b != "object")
        return "?" if unknown_base else None

    def method_names(self) -> set[str]:
        """Returns the name of every method of every class of the surface."""
        return {name for e in self.symbols.values() if e["kind"] == "class" for name, q in e["members"].items()
                if (self.entry(q) or {}).get("kind") == "function"}

    def member_names(self) -> set[str]:
        """Returns every class member and instance attribute name of the surface."""
        return {name for e in self.symbols.values() if e["kind"] == "class" for name in [*e["members"], *e["attrs"]]}

    def init_params(self, cls: str) -> tuple[set, bool]:
        """Returns (the keyword names a class's constructor takes, whether it takes any), following **kwargs
        that an __init__ passes on to super().__init__."""
        params: set = set()
        for c in self.mro(cls):
            init = self.symbols[c]["members"].get("__init__")
            e = self.entry(init) if init else None
            if e is None:
                continue
            params |= set(e["params"])
            if not e["varkw"]:
                return params, False
            if not e["kwargs_to_super"]:
                return params, True
        return params, True         # the rest of the chain is outside the surface: any keyword may be right


# ------------------------------------------------------------------------------------------------ collector

@dataclass(frozen=True)
class Use:
    """One reach into rclpy/launch/launch_ros: a name (or `callable(keyword=)`), where, whether feature-detected,
    and whether the checked surface has it (None: not decidable there)."""

    name: str
    where: str
    optional: bool
    present: bool | None


class _Ours:
    """A class of the checked sources: its bases (surface classes or other classes of ours) and own names."""

    def __init__(self, name: str, bases: list, own: set):
        self.name, self.bases, self.own = name, bases, own
        self.self_attrs: dict[str, set] = {}


class Collector:
    """Collects the uses in a set of source files against a surface."""

    def __init__(self, surface: Surface):
        self.s = surface
        self.uses: list[Use] = []
        self.unknown_calls: list[tuple[str, str]] = []     # (name, where): `x.name(...)` on x of unknown type
        self.own_names: set[str] = set()
        self.funcs: dict[str, tuple] = {}                 # "module.func" -> return type of our own functions
        self.classes: dict[str, _Ours] = {}
        self._envs: dict[str, dict] = {}

    # -- files
    def run(self, files: dict[str, str]) -> "Collector":
        """files: {display path: source}; module names come from the paths under the repository."""
        trees = {p: ast.parse(src) for p, src in files.items()}
        for tree in trees.values():
            for n in ast.walk(tree):
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    self.own_names.add(n.name)
                elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
                    self.own_names.add(n.attr)
        for quiet in (True, False):               # first learn our functions' and classes' types, then record
            self._quiet = quiet
            for path, tree in trees.items():
                self._file(path, tree)
        return self

    def _module_of(self, path: str) -> str:
        p = Path(path).with_suffix("")
        parts = p.parts[:-1] if p.name == "__init__" else p.parts
        return ".".join(parts)

    def _file(self, path: str, tree: ast.Module):
        self.path, self.module = path, self._module_of(path)
        # a function sees the module's names bound after it (they exist when it runs): the second pass starts
        # from the names the first pass bound
        self.module_env = dict(self._envs.get(path, {})) if not self._quiet else {}
        self._envs[path] = self.module_env
        self.imports_tracked = any(
            (isinstance(n, ast.Import) and any(a.name.split(".")[0] in TRACKED for a in n.names))
            or (isinstance(n, ast.ImportFrom) and not n.level and (n.module or "").split(".")[0] in TRACKED)
            for n in ast.walk(tree))
        self._block(tree.body, self.module_env, None, False)

    # -- recording
    def _record(self, name: str, node, optional: bool, present: bool | None):
        if not self._quiet:
            self.uses.append(Use(name, f"{self.path}:{getattr(node, 'lineno', 0)}", optional, present))

    # -- types: ("mod"|"cls"|"fn"|"inst", qualified name) of the surface, ("ours", _Ours) / ("ours_inst", _Ours)
    def _attr(self, value, name: str, node, optional: bool):
        """Returns the type of `value.name` and records the use."""
        kind, q = value
        if kind in ("ours", "ours_inst"):
            if name in q.own or name in q.self_attrs:
                return next(iter(q.self_attrs.get(name, ())), None)
            for base in q.bases:
                if base[0] in ("ours", "ours_inst"):
                    found = self._attr(("ours_inst" if kind == "ours_inst" else "ours", base[1]), name, node, optional)
                    if found is not None:
                        return found
                    continue
                return self._attr(("inst" if kind == "ours_inst" else "cls", base[1]), name, node, optional)
            return None
        if not self.s.tracked(q):
            return None
        found = self.s.member(q, name, instance=kind == "inst")
        if found == "?":
            return None
        self._record(f"{self.s.canonical(q)}.{name}", node, optional, found is not None)
        if found is None:
            return None
        e = self.s.entry(found)
        if e is None:
            return ("mod", found) if found in self.s.symbols else None
        if e["kind"] == "module":
            return ("mod", found)
        if e["kind"] == "class":
            return ("cls", found)
        if e["kind"] == "function":
            if e["property"]:
                return ("inst", e["returns"]) if e["returns"] and self.s.entry(e["returns"]) else None
            return ("fn", found)
        if e["kind"] == "value" and e.get("type") and self.s.entry(e["type"]):
            return ("inst", e["type"])
        return None

    def _call(self, node: ast.Call, f, optional: bool):
        """Returns the type of calling `f`; records the keyword arguments."""
        if f is None:
            return None
        kind, q = f
        if kind == "ours":
            return ("ours_inst", q)
        if kind == "ours_fn":
            return q
        if kind == "cls":
            params, takes_any = self.s.init_params(q)
            self._keywords(node, q, params, takes_any, optional)
            return ("inst", q)
        if kind == "fn":
            e = self.s.entry(q)
            self._keywords(node, q, set(e["params"]), e["varkw"], optional)
            r = e["returns"]
            return ("inst", r) if r and self.s.entry(r) and self.s.entry(r)["kind"] == "class" else None
        return None

    def _keywords(self, node: ast.Call, q: str, params: set, takes_any: bool, optional: bool):
        for k in node.keywords:
            if k.arg is not None:
                self._record(f"{q}({k.arg}=)", node, optional, takes_any or k.arg in params)

    def _annotation(self, node, env):
        text = _annotation_text(node)
        if not text:
            return None
        first, *rest = text.split(".")
        t = env.get(first) if first in env else self._global(first)
        for part in rest:
            if t is None or t[0] not in ("mod", "cls"):
                return None
            found = self.s.member(t[1], part)
            if found in (None, "?"):
                return None
            e = self.s.entry(found)
            t = ("cls", found) if e and e["kind"] == "class" else ("mod", found) if e and e["kind"] == "module" else None
        if t is None:
            return None
        if t[0] == "cls":
            return ("inst", t[1])
        if t[0] == "ours":
            return ("ours_inst", t[1])
        return None

    def _global(self, name: str):
        return self.module_env.get(name)

    # -- walking
    def _block(self, stmts, env: dict, klass: _Ours | None, optional: bool):
        for stmt in stmts:
            self._stmt(stmt, env, klass, optional)

    def _import(self, stmt, env, optional):
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                top = a.name.split(".")[0]
                if top not in TRACKED:
                    continue
                present = self.s.entry(a.name) is not None
                self._record(a.name, stmt, optional, present)
                if a.asname:
                    env[a.asname] = ("mod", a.name) if present else None
                else:
                    env[top] = ("mod", top)
            return
        base = stmt.module or ""
        if stmt.level or base.split(".")[0] not in TRACKED:
            for a in stmt.names:          # the package's own modules: their functions and classes
                q = f"{self._abs(stmt)}.{a.name}"
                env[a.asname or a.name] = self.funcs.get(q) or (("ours", self.classes[q]) if q in self.classes
                                                                  else env.get(a.asname or a.name))
            return
        mod = self.s.entry(base)
        self._record(base, stmt, optional, mod is not None and mod["kind"] == "module")
        for a in stmt.names:
            t = self._attr(("mod", base), a.name, stmt, optional) if mod else None
            env[a.asname or a.name] = t

    def _abs(self, stmt: ast.ImportFrom) -> str:
        if not stmt.level:
            return stmt.module or ""
        parts = self.module.split(".")
        is_pkg = self.path.endswith("__init__.py")
        base = parts if is_pkg else parts[:-1]
        base = base[:len(base) - stmt.level + 1]
        return ".".join(base + ([stmt.module] if stmt.module else []))

    def _stmt(self, stmt, env, klass, optional):
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            self._import(stmt, env, optional)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._function(stmt, env, klass, optional)
        elif isinstance(stmt, ast.ClassDef):
            self._class(stmt, env, optional)
        elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            caught = set()
            for h in stmt.handlers:
                types = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
                caught |= {_dotted(t) for t in types if t is not None}
            self._block(stmt.body, env, klass, optional or bool(caught & GUARD_EXCEPTIONS))
            for h in stmt.handlers:
                self._block(h.body, env, klass, optional)
            self._block(stmt.orelse, env, klass, optional)
            self._block(stmt.finalbody, env, klass, optional)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            t = self._expr(stmt.value, env, optional) if stmt.value is not None else None
            if isinstance(stmt, ast.AnnAssign) and t is None:
                t = self._annotation(stmt.annotation, env)
            for target in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]):
                self._bind(target, t, env, klass, optional)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            self._expr(stmt.iter, env, optional)
            self._bind(stmt.target, None, env, klass, optional)
            self._block(stmt.body, env, klass, optional)
            self._block(stmt.orelse, env, klass, optional)
        else:
            for _, value in ast.iter_fields(stmt):
                items = value if isinstance(value, list) else [value]
                for item in items:
                    if isinstance(item, ast.stmt):
                        self._stmt(item, env, klass, optional)
                    elif isinstance(item, ast.expr):
                        self._expr(item, env, optional)
                    elif isinstance(item, ast.withitem):
                        t = self._expr(item.context_expr, env, optional)
                        if item.optional_vars is not None:
                            self._bind(item.optional_vars, t, env, klass, optional)
                    elif isinstance(item, (ast.excepthandler, ast.match_case)):
                        self._block(item.body, env, klass, optional)

    def _bind(self, target, t, env, klass, optional):
        if isinstance(target, ast.Name):
            env[target.id] = t
        elif isinstance(target, ast.Attribute):
            if isinstance(target.value, ast.Name) and target.value.id == "self" and klass is not None:
                if t is not None:
                    klass.self_attrs.setdefault(target.attr, set()).add(t)
                else:
                    klass.self_attrs.setdefault(target.attr, set())
            else:
                self._expr(target.value, env, optional)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for el in target.elts:
                self._bind(el, None, env, klass, optional)
        else:
            self._expr(target, env, optional)

    def _function(self, node, env, klass, optional):
        inner = dict(env)
        args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
        for a in args:
            inner[a.arg] = self._annotation(a.annotation, env)
        if klass is not None and args and args[0].arg == "self" \
                and not any(_dotted(d) in ("staticmethod", "classmethod") for d in node.decorator_list):
            inner["self"] = ("ours_inst", klass)
        for d in node.args.defaults + node.args.kw_defaults + node.decorator_list:
            if d is not None:
                self._expr(d, env, optional)
        ret = self._annotation(node.returns, env)
        if klass is None and ret is not None and self._quiet:
            self.funcs[f"{self.module}.{node.name}"] = ("ours_fn", ret)
            env[node.name] = ("ours_fn", ret)
        elif klass is None:
            env[node.name] = ("ours_fn", ret) if ret is not None else None
        self._block(node.body, inner, klass, optional)

    def _class(self, node, env, optional):
        key = f"{self.module}.{node.name}"
        bases = []
        for b in node.bases:
            t = self._expr(b, env, optional)
            if t is not None and t[0] in ("cls", "ours"):
                bases.append(t)
        own = {s.name for s in node.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        own |= {t.id for s in node.body if isinstance(s, (ast.Assign, ast.AnnAssign))
                for t in (s.targets if isinstance(s, ast.Assign) else [s.target]) if isinstance(t, ast.Name)}
        ours = self.classes.get(key)
        if ours is None:
            ours = self.classes[key] = _Ours(key, bases, own)
        else:           # the second pass knows the classes of files read after this one
            ours.bases, ours.own = bases or ours.bases, own
        env[node.name] = ("ours", ours)
        for stmt in node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._function(stmt, env, ours, optional)
            else:
                self._stmt(stmt, dict(env), ours, optional)

    def _expr(self, node, env, optional):
        """Returns the type of an expression and records the uses inside it."""
        if node is None:
            return None
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self._expr(node.value, env, optional)
            return None if base is None else self._attr(base, node.attr, node, optional)
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                base = self._expr(node.func.value, env, optional)
                f = None if base is None else self._attr(base, node.func.attr, node.func, optional)
                if base is None and not self._quiet and self.imports_tracked:
                    self.unknown_calls.append((node.func.attr, f"{self.path}:{node.lineno}"))
            else:
                f = self._expr(node.func, env, optional)
            for a in node.args:
                self._expr(a, env, optional)
            for k in node.keywords:
                self._expr(k.value, env, optional)
            if isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr") and len(node.args) >= 2:
                return None
            return self._call(node, f, optional)
        if isinstance(node, (ast.Lambda, ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp)):
            inner = dict(env)
            for gen in getattr(node, "generators", []):
                self._expr(gen.iter, inner, optional)
                self._bind(gen.target, None, inner, None, optional)
                for cond in gen.ifs:
                    self._expr(cond, inner, optional)
            if isinstance(node, ast.Lambda):
                for a in node.args.args + node.args.kwonlyargs:
                    inner[a.arg] = None
            for part in ("elt", "key", "value", "body"):
                sub = getattr(node, part, None)
                if isinstance(sub, ast.expr):
                    self._expr(sub, inner, optional)
            return None
        if isinstance(node, ast.NamedExpr):
            t = self._expr(node.value, env, optional)
            env[node.target.id] = t
            return t
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._expr(child, env, optional)
        return None


# -------------------------------------------------------------------------------------------------- sources

def package_sources(repo: Path = REPO) -> dict[str, str]:
    """Returns {path relative to the repository: source} of every Python file that makes up the package and its
    tests: muon_ad_ros/, launch/, the executables in scripts/, test/."""
    files = {}
    for folder in ("muon_ad_ros", "launch", "test"):
        for p in sorted((repo / folder).rglob("*.py")):
            files[str(p.relative_to(repo))] = p.read_text()
    for p in sorted((repo / "scripts").iterdir()):
        text = p.read_text(errors="replace")
        if text.startswith("#!") and "python" in text.splitlines()[0]:
            files[str(p.relative_to(repo))] = text
    return files


def collect(surface: Surface, files: dict[str, str]) -> Collector:
    return Collector(surface).run(files)


# -------------------------------------------------------------------------------------------- Fast DDS 2.6

_XS = "{http://www.w3.org/2001/XMLSchema}"


def xsd_schema(text: str) -> dict:
    """Returns a profile schema as data: {"root": {element: type}, "types": {type: {"elements": {name: type},
    "attributes": [...], "enum": [...]}}} (inline types get the name of their element's path)."""
    root = ET.fromstring(text)
    types: dict = {}
    groups = {g.get("name"): g for g in root.findall(f"{_XS}group") if g.get("name")}

    def content(node, path: str) -> dict:
        out = {"elements": {}, "attributes": [], "enum": []}
        stack = list(node)
        while stack:
            child = stack.pop(0)
            tag = child.tag.replace(_XS, "")
            if tag == "element":
                name = child.get("name") or child.get("ref")
                if child.get("type"):
                    out["elements"][name] = child.get("type").split(":")[-1]
                else:
                    inline = f"{path}/{name}"
                    types[inline] = content(child, inline)
                    out["elements"][name] = inline
            elif tag == "attribute" and child.get("name"):
                out["attributes"].append(child.get("name"))
            elif tag == "enumeration":
                out["enum"].append(child.get("value"))
            elif tag == "group" and child.get("ref") in groups:
                stack[:0] = list(groups[child.get("ref")])
            elif tag in ("complexType", "simpleType", "sequence", "choice", "all", "restriction", "union",
                         "simpleContent", "complexContent", "extension"):
                stack[:0] = list(child)
        return out

    for t in list(root.findall(f"{_XS}complexType")) + list(root.findall(f"{_XS}simpleType")):
        types[t.get("name")] = content(t, t.get("name"))
    roots = {}
    for el in root.findall(f"{_XS}element"):
        if el.get("type"):
            roots[el.get("name")] = el.get("type").split(":")[-1]
        else:
            types[el.get("name")] = content(el, el.get("name"))
            roots[el.get("name")] = el.get("name")
    return {"root": roots, "types": types}


def check_profile(schema: dict, profile: Path, parser_names: list[str] = ()) -> list[str]:
    """Returns what in a Fast DDS profile the schema does not know (elements, attributes, enumerated values).
    An element the schema lacks is accepted when the parser reads that name (`parser_names`): 2.6's schema
    lists <id> under <userTransports> where its parser reads <transport_id>; its children are not checked."""
    problems = []

    def local(tag: str) -> str:
        return tag.split("}")[-1]

    def walk(el, type_name: str, path: str):
        t = schema["types"].get(type_name)
        if t is None:
            return                      # an XML Schema built-in type: text only
        for a in el.attrib:
            if local(a) not in t["attributes"] and not a.startswith("{"):
                problems.append(f"{path}@{local(a)}: no such attribute")
        if t["enum"] and (el.text or "").strip() not in t["enum"]:
            problems.append(f"{path}: {el.text!r} is not one of {t['enum']}")
        for child in el:
            if not isinstance(child.tag, str):
                continue
            name = local(child.tag)
            if name not in t["elements"]:
                if name not in parser_names:
                    problems.append(f"{path}/{name}: no such element")
                continue
            walk(child, t["elements"][name], f"{path}/{name}")

    try:
        root = ET.parse(profile).getroot()
    except ET.ParseError as exc:
        return [f"{profile}: not well-formed XML ({exc}); Fast DDS's parser rejects it"]
    name = local(root.tag)
    if name not in schema["root"]:
        return [f"/{name}: not a root element of the schema"]
    walk(root, schema["root"][name], f"/{name}")
    return problems


# ------------------------------------------------------------------------------------------------- generate

def _git(repo: Path, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def generate(mirrors: Path) -> dict:
    """Returns the Humble API data read from the git mirrors (owner+name/repo under `mirrors`)."""
    modules, sources = {}, {}
    for pkg, (repo, ref, folder) in SOURCES.items():
        git_dir = mirrors / repo.replace("/", "+") / "repo"
        sources[repo] = {"ref": ref, "commit": _git(git_dir, "rev-parse", ref).strip(), "path": folder}
        for path in _git(git_dir, "ls-tree", "-r", "--name-only", ref, "--", folder).split():
            if not path.endswith(".py"):
                continue
            rel = Path(path).relative_to(Path(folder).parent).with_suffix("")
            is_pkg = rel.name == "__init__"
            mod = ".".join(rel.parts[:-1] if is_pkg else rel.parts)
            modules[mod] = (_git(git_dir, "show", f"{ref}:{path}"), is_pkg)
    repo, ref, xsd = FASTDDS
    git_dir = mirrors / repo.replace("/", "+") / "repo"
    sources[repo] = {"ref": ref, "commit": _git(git_dir, "rev-parse", ref).strip(), "path": xsd}
    env = set()
    for path in _git(git_dir, "ls-tree", "-r", "--name-only", ref, "--", "src/cpp", "include").split():
        if path.endswith((".cpp", ".hpp", ".h")) and "sqlite3" not in path:
            env |= set(ENV_NAME.findall(_git(git_dir, "show", f"{ref}:{path}")))
    return {"about": "ROS 2 Humble's rclpy, launch and launch_ros API surface and Fast DDS 2.6's profile schema, "
                     "XML parser names and environment variables, made by `python -m muon_ad_ros.bench.ros_api "
                     "generate`",
            "sources": sources, "symbols": Surface.from_sources(modules).symbols,
            "fastdds_schema": xsd_schema(_git(git_dir, "show", f"{ref}:{xsd}")), "fastdds_env": sorted(env),
            "fastdds_parser_names": sorted(set(PARSER_NAME.findall(_git(git_dir, "show", f"{ref}:{FASTDDS_PARSER}"))))}


# ---------------------------------------------------------------------------------------------------- check

def load(path: Path = HUMBLE_API) -> dict:
    return json.loads(path.read_text())


def fastdds_profile_variable(known_env: list[str]) -> tuple[str, ...]:
    """Returns the profile variable(s) the graph sets for a Fast DDS whose library names `known_env`."""
    import tempfile

    from muon_ad_ros import distro
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "libfastrtps.so").write_bytes(b"\0".join(n.encode() for n in known_env) + b"\0")
        distro._contains.cache_clear()
        try:
            return distro.profile_vars({"LD_LIBRARY_PATH": tmp})
        finally:
            distro._contains.cache_clear()


def check(data: dict, files: dict[str, str], installed: Surface | None = None) -> dict:
    """Returns the check's findings: missing (required names Humble lacks), absent_optional (feature-detected),
    by_name (post-Humble names reached on values of unknown type), profile (Fast DDS problems), counts."""
    humble = Surface(data["symbols"])
    col = collect(humble, files)
    required = sorted({(u.name, u.where) for u in col.uses if u.present is False and not u.optional})
    optional = sorted({(u.name, u.where) for u in col.uses if u.present is False and u.optional})
    by_name = []
    if installed is not None:
        newer = installed.method_names() - humble.member_names() - col.own_names
        by_name = sorted({(n, w) for n, w in col.unknown_calls if n in newer})
    from muon_ad_ros import graph
    profile_problems = check_profile(data["fastdds_schema"], graph.transport_profile(), data["fastdds_parser_names"])
    variables = fastdds_profile_variable(data["fastdds_env"])
    profile_problems += [f"the graph sets {v} for Fast DDS 2.6, which does not read it"
                         for v in variables if v not in data["fastdds_env"]]
    return {"sources": data["sources"], "files": len(files), "uses": len({u.name for u in col.uses}),
            "present": len({u.name for u in col.uses if u.present}),
            "missing": [{"name": n, "where": w} for n, w in required],
            "absent_optional": [{"name": n, "where": w} for n, w in optional],
            "by_name": [{"name": n, "where": w} for n, w in by_name],
            "profile": profile_problems, "profile_variable": list(variables)}


def ok(result: dict) -> bool:
    return not (result["missing"] or result["by_name"] or result["profile"])


def summary(result: dict) -> str:
    lines = [f"Humble API check: {'PASS' if ok(result) else 'FAIL'}  {result['files']} files, {result['uses']} "
             f"rclpy/launch/launch_ros names used, {result['present']} in Humble, {len(result['missing'])} missing, "
             f"{len(result['absent_optional'])} feature-detected absent, {len(result['by_name'])} post-Humble by name; "
             f"Fast DDS 2.6 profile: {len(result['profile'])} problems, variable {', '.join(result['profile_variable'])}"]
    lines += [f"    missing in Humble: {m['name']}  ({m['where']})" for m in result["missing"]]
    lines += [f"    feature-detected, absent in Humble: {m['name']}  ({m['where']})" for m in result["absent_optional"]]
    lines += [f"    post-Humble name on a value of unknown type: {m['name']}  ({m['where']})" for m in result["by_name"]]
    lines += [f"    Fast DDS 2.6: {p}" for p in result["profile"]]
    lines.append("    against " + ", ".join(f"{r}@{s['ref']} {s['commit'][:12]}" for r, s in result["sources"].items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m muon_ad_ros.bench.ros_api", description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("check", "generate"))
    p.add_argument("--mirrors", default="/work/.mirror", help="generate: folder of the git mirrors")
    p.add_argument("--out", default=str(HUMBLE_API), help="generate: where the data goes")
    p.add_argument("--plant", action="append", default=[],
                   help="check: add a line of code to the checked sources (shows the check failing)")
    a = p.parse_args(argv)
    if a.command == "generate":
        data = generate(Path(a.mirrors))
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(data, indent=0, sort_keys=True) + "\n")
        print(f"wrote {a.out}: {len(data['symbols'])} names; " + ", ".join(
            f"{r}@{s['ref']} {s['commit'][:12]}" for r, s in data["sources"].items()))
        return 0
    files = package_sources()
    if a.plant:
        files["<planted>"] = "\n".join(a.plant) + "\n"
    result = check(load(), files, Surface.from_installed())
    print(summary(result))
    return 0 if ok(result) else 1


if __name__ == "__main__":
    raise SystemExit(main())
