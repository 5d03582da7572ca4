"""The package's rooms and the rules between them, read from the code itself.

Every ``import`` and ``from ... import`` of the package is parsed with :mod:`ast`, at module level
and inside functions alike, relative imports resolved. From them:

- the graph between the package's modules has no cycle (importing ``a.b.c`` runs the ``__init__``
  of ``a.b`` first, so an import of a module also leans on its packages' ``__init__`` files);
- no module takes a private name (a ``_name``, or anything from a ``_module``) from another room:
  rooms share their helpers through ``_shared/``, whose own names are therefore public to the
  library and carry no underscore;
- every import between rooms is one that the table in ``docs/architecture.md`` allows;
- the top level holds at most 15 rooms besides ``__init__`` and ``__main__``;
- no function outside the Numba kernels is longer than 120 lines or takes more than 12 parameters;
- every name the documentation promises still imports from where it did.
"""

from __future__ import annotations

import ast
import importlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ispad_core"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MAX_TOP_LEVEL = 15
MAX_LINES = 120
MAX_PARAMETERS = 12
KERNEL_DECORATORS = {"njit", "jit", "vectorize", "guvectorize", "stencil", "cfunc"}


# --------------------------------------------------------------------------- reading the package


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES: dict[str, ast.Module] = {m: ast.parse(p.read_text(encoding="utf-8"), str(p)) for m, p in MODULES.items()}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the module imported (``from pkg import sub`` resolved to ``pkg.sub``)
    names: tuple[str, ...]  # the names taken from ``target`` (empty for a module import)
    line: int
    in_function: bool
    in_hook: bool = False  # inside a module's ``__getattr__`` (PEP 562): runs when a user asks an old name

    def __str__(self) -> str:
        where = "inside a function" if self.in_function else "at module level"
        what = f"{self.target}:{','.join(self.names)}" if self.names else self.target
        return f"{self.source} (line {self.line}, {where}) imports {what}"


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _walk(tree: ast.Module) -> Iterator[tuple[ast.AST, bool, bool]]:
    """Every node with whether it sits inside a function, and inside a module-level ``__getattr__``."""
    stack: list[tuple[ast.AST, bool, bool]] = [(tree, False, False)]
    while stack:
        node, in_function, in_hook = stack.pop()
        yield node, in_function, in_hook
        hook = in_hook or (isinstance(node, ast.FunctionDef) and node.name == "__getattr__" and node in tree.body)
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        stack.extend((child, inner, hook) for child in ast.iter_child_nodes(node))


def _imports_of(module: str) -> Iterator[Import]:
    for node, in_function, in_hook in _walk(TREES[module]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ispad_core":
                    yield Import(module, alias.name, (), node.lineno, in_function, in_hook)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, node)
            if target.split(".")[0] != "ispad_core":
                continue
            names = []
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # ``from pkg import submodule``
                    yield Import(module, sub, (), node.lineno, in_function, in_hook)
                else:
                    names.append(alias.name)
            if names or not node.names:
                yield Import(module, target, tuple(names), node.lineno, in_function, in_hook)
        elif isinstance(node, ast.Call):  # importlib.import_module("ispad_core....") with a literal
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called == "import_module" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("ispad_core"):
                    yield Import(module, arg.value, (), node.lineno, in_function, in_hook)
                elif isinstance(arg, ast.JoinedStr) and _names_the_package(arg) and module != "ispad_core":
                    COMPUTED.append(f"{module} (line {node.lineno})")


def _names_the_package(text: ast.JoinedStr) -> bool:
    """Whether an f-string starts with ``ispad_core`` or the module's own ``__name__``/``__package__``."""
    first = text.values[0] if text.values else None
    if isinstance(first, ast.Constant):
        return str(first.value).startswith("ispad_core")
    value = getattr(first, "value", None)
    return isinstance(value, ast.Name) and value.id in ("__name__", "__package__")


COMPUTED: list[str] = []  # import_module calls whose module name is computed, outside the root's lazy hook
IMPORTS: list[Import] = [imp for module in MODULES for imp in _imports_of(module)]


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:k]) for k in range(2, len(parts))]


def _edges() -> dict[str, dict[str, Import]]:
    """module -> {module it makes Python run: Import that does it}.

    Importing ``a.b.c`` runs ``a.b/__init__`` and ``a.b.c``; the packages the importer sits in
    have run already, so they count only when imported by name (``from ispad_core.stream import
    x`` inside ``ispad_core.stream.dask`` leans on the package's ``__init__``, which may import
    that module in turn). A module's lazy attribute hook (``__getattr__``, PEP 562) is left out:
    it imports when a user asks ``ispad_core.<name>`` or an old name (``ispad_core.io.RealTransform``),
    and nothing of the package asks that; :func:`test_lazy_hooks_serve_only_the_old_names` keeps
    those few in check.
    """
    edges: dict[str, dict[str, Import]] = {m: {} for m in MODULES}
    for imp in IMPORTS:
        if imp.in_hook:
            continue
        mine = set(_ancestors(imp.source)) | ({imp.source} if _is_package(imp.source) else set())
        implied = [a for a in _ancestors(imp.target) if a not in mine]
        for target in [*implied, imp.target]:
            if target in MODULES and target != imp.source:
                edges[imp.source].setdefault(target, imp)
    return edges


def _find_cycle(edges: dict[str, dict[str, Import]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def room(module: str) -> str:
    """The room (first-level subpackage or top-level module) a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "ispad_core"


# --------------------------------------------------------------------------- the rules


def test_the_parser_sees_the_package():
    assert {"ispad_core", "ispad_core.cli", "ispad_core.synth", "ispad_core.nn"} <= set(MODULES)
    assert len(IMPORTS) > 200
    assert any(imp.in_function for imp in IMPORTS)


def test_every_import_finds_its_module_in_this_tree():
    """An old path (``ispad_core._validation``) must fail here, not load from another installed copy."""
    moved = {"ispad_core.proxy", "ispad_core.crops", "ispad_core.demo"}
    bad = [str(imp) for imp in IMPORTS if imp.target not in MODULES and imp.target not in moved]
    assert not bad, "imports of modules that are not in the package:\n  " + "\n  ".join(bad)


def test_every_import_names_its_module():
    """An ``import_module(f"...")`` would hide an edge from the graph; the package imports by name."""
    assert not COMPUTED, f"modules imported by a computed name: {COMPUTED}"


def test_no_import_cycle_at_module_level_or_inside_functions():
    edges = _edges()
    cycle = _find_cycle(edges)
    if cycle:
        steps = [str(edges[a][b]) for a, b in zip(cycle, cycle[1:])]
        pytest.fail("import cycle " + " -> ".join(cycle) + ":\n  " + "\n  ".join(steps))


#: The lazy hooks allowed, module -> modules its ``__getattr__`` may import: the root's
#: submodules on first attribute access, and the old home of a name that moved to another room.
HOOKS = {"ispad_core.io": {"ispad_core.nn.transform"}}


def test_lazy_hooks_serve_only_the_old_names():
    hooks: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if imp.in_hook and imp.source != "ispad_core":
            hooks.setdefault(imp.source, set()).add(imp.target)
    assert hooks == HOOKS


def test_the_cycle_finder_finds_cycles():
    imp = Import("a", "b", (), 1, True)
    assert _find_cycle({"a": {"b": imp}, "b": {"c": imp}, "c": {"a": imp}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b": imp}, "b": {}, "c": {"a": imp}}) is None


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_parts(imp: Import) -> list[str]:
    """The private components of what ``imp`` takes from another room (``_shared`` itself is allowed)."""
    parts = imp.target.split(".")[1:]
    if parts and parts[0] == "_shared":
        parts = parts[1:]
    return [p for p in parts if _private(p)] + [n for n in imp.names if _private(n)]


def test_no_private_name_is_taken_from_another_room():
    crossing = [imp for imp in IMPORTS if room(imp.source) != room(imp.target) and room(imp.target) != "ispad_core"]
    bad = [f"{imp}: {', '.join(_private_parts(imp))}" for imp in crossing if _private_parts(imp)]
    assert not bad, "private names taken across rooms:\n  " + "\n  ".join(bad)


def test_the_private_name_rule_sees_modules_and_names():
    assert _private_parts(Import("ispad_core.stream.x", "ispad_core.synth._synth", ("_run",), 1, True)) == ["_synth", "_run"]
    assert _private_parts(Import("ispad_core.cli.x", "ispad_core._shared.files", ("atomic_output",), 1, False)) == []
    assert _private_parts(Import("ispad_core.io.x", "ispad_core._shared.files", ("_umask",), 1, False)) == ["_umask"]


def test_only_the_torch_layer_imports_torch():
    """torch (and torchvision) are imported in ``nn/`` only, at module level or inside functions:
    the rooms above it reach torch through ``nn`` (``nn.runtime`` for threads, devices and the
    process group)."""
    bad = []
    for module, tree in TREES.items():
        if room(module) == "nn":
            continue
        for node, _, _ in _walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [f"{module} (line {node.lineno}) imports {n}" for n in names if n.split(".")[0] in ("torch", "torchvision")]
    assert not bad, "torch imported outside ispad_core.nn:\n  " + "\n  ".join(bad)


def test_top_level_holds_at_most_15_rooms():
    entries = sorted(
        p.name for p in PACKAGE.iterdir() if p.name not in {"__init__.py", "__main__.py", "__pycache__"}
        and not p.name.startswith(".")
    )
    assert len(entries) <= MAX_TOP_LEVEL, f"{len(entries)} entries at the top level: {entries}"


def _is_kernel(node: ast.AST) -> bool:
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in KERNEL_DECORATORS:
            return True
    return False


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    count = len(names) + (a.vararg is not None) + (a.kwarg is not None)
    return count - (1 if names and names[0] in ("self", "cls") else 0)


def test_functions_stay_short_and_take_few_parameters():
    bad = []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _is_kernel(node):
                lines = node.end_lineno - node.lineno + 1
                params = _parameters(node)
                if lines > MAX_LINES or params > MAX_PARAMETERS:
                    bad.append(f"{module}.{node.name} (line {node.lineno}): {lines} lines, {params} parameters")
    assert not bad, f"functions over {MAX_LINES} lines or {MAX_PARAMETERS} parameters:\n  " + "\n  ".join(bad)


# --------------------------------------------------------------------------- the map in docs/architecture.md


def _allowed_table() -> dict[str, set[str]]:
    """Rows ``| `room` | `other`, `other` ... |`` under the heading "What each room may import"."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## What each room may import", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`"):
            table[cells[0].strip("`")] = set(re.findall(r"`([^`]+)`", cells[1]))
    return table


def test_the_map_names_every_room():
    rooms = {room(m) for m in MODULES} - {"ispad_core", "__main__"}
    table = _allowed_table()
    assert rooms == set(table), f"rooms in the package but not in docs/architecture.md: {sorted(rooms - set(table))}; " \
        f"in the map but not in the package: {sorted(set(table) - rooms)}"


def test_every_import_between_rooms_is_one_the_map_allows():
    table = _allowed_table()
    bad = []
    for imp in IMPORTS:
        a, b = room(imp.source), room(imp.target)
        if a in ("ispad_core", "__main__") or a == b or b == "ispad_core" or imp.in_hook:
            continue
        if b not in table.get(a, set()):
            bad.append(f"{imp} (room {a} -> {b})")
    assert not bad, "imports the map in docs/architecture.md does not allow:\n  " + "\n  ".join(bad)


def test_the_map_is_a_layering():
    """The allowed imports themselves have no cycle, so the rooms stack in layers."""
    table = _allowed_table()
    imp = Import("map", "map", (), 0, False)
    edges = {a: {b: imp for b in deps if b in table} for a, deps in table.items()}
    assert _find_cycle(edges) is None


# --------------------------------------------------------------------------- the promised names

#: Every ``from ispad_core... import ...`` of the README, docs/ and the design notes when the
#: package moved into its rooms: these must keep importing.
PROMISED = {
    "ispad_core.augment": ["AUGMENT_PRESETS", "augment", "augment_batch", "augment_batch_with_masks", "warp_affine"],
    "ispad_core.cli": ["main"],
    "ispad_core.evaluation": ["evaluate_scores", "format_row", "read_maps", "read_scores"],
    "ispad_core.experiment": ["run_experiment", "load_config"],
    "ispad_core.fractions": ["nested_fractions"],
    "ispad_core.io": [
        "RealTransform", "merge_streams", "open_stream", "read_image", "read_images", "read_mvtec", "write_mvtec",
        "write_png", "write_stream", "StreamReader",
    ],
    "ispad_core.metrics": [
        "au_pro", "classification_report", "confusion_counts", "f1", "f1_optimal_threshold", "fpr", "mcc",
        "mcc_from_counts", "pixel_roc_auc", "precision", "pro_curve", "recall", "roc_auc",
    ],
    "ispad_core.modality": ["MODALITIES"],
    "ispad_core.nn": [
        "InjectionDataset", "Preprocess", "evaluate", "inspect", "load_model", "predict", "predict_windows",
        "resnet18_classifier", "classifier", "save_model", "train", "train_detector", "measure_throughput",
    ],
    "ispad_core.nn.inference": ["inspect", "inspect_files", "overlay"],
    "ispad_core.preprocess": ["adjust_brightness", "gaussian_smooth"],
    "ispad_core.proxy": ["AREA_CLASSES", "POINT_CLASSES", "proxy_benchmark", "proxy_defect"],
    "ispad_core.samples": ["KINDS", "inspection_scan", "screen_print", "proxy_benchmark"],
    "ispad_core.stream": [
        "SyntheticStream", "balanced_stream", "shard_range", "stream_plan", "visibility_summary",
        "write_balanced_stream",
    ],
    "ispad_core.synth": [
        "BatchResult", "DefectMixture", "DefectParams", "PRESETS", "SynthResult", "gallery", "random_walk_skeleton",
        "synthesize", "synthesize_batch", "synthesize_steps",
    ],
    "ispad_core.tiling": ["center_crop", "random_patches", "sliding_windows", "stitch"],
}


def _documented_imports() -> dict[str, set[str]]:
    """``from ispad_core.x import a, b`` lines of README.md, docs/*.md and docs/*.py (public names)."""
    found: dict[str, set[str]] = {}
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs").glob("*.py"))]
    pattern = re.compile(r"^\s*(?:>>> |\.\.\. )?from (ispad_core[\w.]*) import ([\w, ]+)", re.M)
    for path in files:
        for module, names in pattern.findall(path.read_text(encoding="utf-8")):
            found.setdefault(module, set()).update(n.strip() for n in names.split(",") if n.strip())
    return found


def _contract_names() -> dict[str, set[str]]:
    """The names of the public contract listed in docs/architecture.md (``- `ispad_core.x`: `name`, ...``)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Public import paths", 1)[1].split("\n## ", 1)[0]
    found: dict[str, set[str]] = {}
    for module, rest in re.findall(r"^- `(ispad_core[\w.]*)`: (.*)$", section, flags=re.M):
        found.setdefault(module, set()).update(re.findall(r"`(\w+)`", rest))
    return found


def test_the_documented_names_are_read():
    documented, contract = _documented_imports(), _contract_names()
    assert {"ispad_core.synth", "ispad_core.stream", "ispad_core.samples", "ispad_core.io"} <= set(documented)
    assert sum(map(len, contract.values())) >= 60, "docs/architecture.md lost its list of public names"


@pytest.mark.parametrize("source", ["frozen", "docs", "contract"])
def test_every_promised_name_imports_from_where_it_did(source):
    table = {"frozen": PROMISED, "docs": _documented_imports(), "contract": _contract_names()}[source]
    missing = []
    for module, names in sorted(table.items()):
        if module.startswith("ispad_core.nn"):
            pytest.importorskip("torch")
        mod = importlib.import_module(module)
        with warnings.catch_warnings():  # a name that moved still imports from its old home, with a warning
            warnings.simplefilter("ignore", DeprecationWarning)
            missing += [f"{module}.{n}" for n in sorted(names) if not _private(n) and not hasattr(mod, n)]
    assert not missing, f"promised names that no longer import: {missing}"


def test_the_old_module_paths_still_import_and_are_the_new_modules():
    """``ispad_core.proxy`` and the other paths of moved modules give the module itself, not a copy."""
    import ispad_core.proxy
    import ispad_core.samples.proxy

    assert ispad_core.proxy is ispad_core.samples.proxy
    assert ispad_core.proxy.__spec__.name == "ispad_core.samples.proxy"
    for old in ("crops", "demo"):
        assert hasattr(importlib.import_module(f"ispad_core.{old}"), "__file__")
