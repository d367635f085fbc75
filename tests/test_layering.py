"""The package's import structure: no import circles, and no module imports a layer above its own.

Every `import zoo...` counts, at module top or inside a function (an import inside a function
hides a circle from Python, not from the design).
"""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set

REPO = Path(__file__).resolve().parent.parent

# lowest first; a module may import its own layer and the ones below
LAYERS: List[Set[str]] = [
    {"zoo.errors", "zoo.fsutil", "zoo.names", "zoo.device", "zoo.quiet", "zoo.numerics", "zoo.schema", "zoo.home", "zoo.plugins", "zoo.manifest", "zoo.outdir",
     "zoo.assets", "zoo.recipes"},
    {"zoo.modelfiles", "zoo.modelcheck", "zoo.program", "zoo.contracts", "zoo.predictor", "zoo.protocol", "zoo.catalog", "zoo.runtime"},
    {"zoo.data", "zoo.models", "zoo.registry", "zoo.hub", "zoo.quant"},
    {"zoo.tasks", "zoo.evaluate", "zoo.evaluate.classification", "zoo.evaluate.detection", "zoo.report", "zoo.runfolder"},
    {"zoo.evaluate.run", "zoo.reproduce", "zoo.api", "zoo.deploy"},
    {"zoo.cli", "zoo.__main__"},
]


def _modules() -> Dict[str, Path]:
    found = {}
    for path in sorted((REPO / "zoo").rglob("*.py")) + sorted((REPO / "deploy").rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        parts = ["zoo", *rel.parts] if rel.parts[0] == "deploy" else list(rel.parts)  # deploy/ installs as zoo.deploy
        found[".".join(parts).removesuffix(".__init__")] = path
    return found


def _unit(module: str) -> str:
    """The unit a module belongs to: the longest LAYERS name that prefixes it."""
    names = [n for layer in LAYERS for n in layer if module == n or module.startswith(n + ".")]
    return max(names, key=len) if names else module


def _layer(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def _edges() -> Dict[str, Dict[str, List[str]]]:
    modules = _modules()
    edges: Dict[str, Dict[str, List[str]]] = defaultdict(lambda: defaultdict(list))
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zoo"):
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("zoo")]
            else:
                continue
            for target in targets:
                a, b = _unit(name), _unit(target)
                if a != b and "zoo" not in (a, b):  # zoo/__init__ only re-exports the API, lazily
                    edges[a][b].append(f"{path.relative_to(REPO)}:{node.lineno}")
    return edges


def test_every_module_has_a_layer() -> None:
    missing = sorted({_unit(m) for m in _modules()} - set().union(*LAYERS) - {"zoo"})
    assert not missing, missing


def test_no_module_imports_a_higher_layer() -> None:
    upward = [f"{a} -> {b} ({where[0]})" for a, targets in _edges().items() for b, where in targets.items()
              if _layer(b) > _layer(a)]
    assert not upward, "\n".join(upward)


def test_no_import_circle() -> None:
    edges = _edges()
    seen: Set[str] = set()

    def visit(node: str, path: List[str]) -> None:
        if node in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(node):] + [node]))
        if node in seen:
            return
        for nxt in edges.get(node, {}):
            visit(nxt, path + [node])
        seen.add(node)

    for start in list(edges):
        visit(start, [])


def test_code_cites_only_sections_docs_detection_md_has() -> None:
    headings = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", (REPO / "docs" / "detection.md").read_text(), re.M))
    cited = []
    for folder in ("zoo", "deploy", "tests"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "DETECTION" + ".md" not in text, f"{path} cites a file outside the repository"
            cited += [(path.name, s) for s in re.findall(r"docs/detection\.md\s+§(\d+(?:\.\d+)?)", text)]
    assert cited and all(section in headings for _, section in cited), (cited, sorted(headings))


HEAVY = ("paddle", "paddleslim", "paddlelite", "cv2", "onnxruntime", "openvino", "onnx", "matplotlib", "sklearn",
         "pycocotools", "paddle2onnx")


def _top_level_imports(path: Path) -> List[str]:
    """The modules a file imports when it is imported (statements outside functions and classes' methods)."""
    found: List[str] = []

    def visit(nodes: list) -> None:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(node, ast.Import):
                found.extend(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append(node.module)
            visit(list(ast.iter_child_nodes(node)))

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def _heavy_modules() -> Set[str]:
    """The zoo modules whose import pulls in Paddle, OpenCV or another heavy library (directly or through zoo)."""
    modules = _modules()
    imports = {name: _top_level_imports(path) for name, path in modules.items()}
    heavy: Set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, targets in imports.items():
            if name not in heavy and any(t.split(".")[0] in HEAVY or t in heavy or _unit(t) in heavy for t in targets):
                heavy.add(name)
                changed = True
    return heavy


def test_imports_inside_functions_are_there_for_a_reason() -> None:
    """A zoo import sits inside a function only when its module is heavy (kept off `zoo --help` and light
    commands) or of the same layer (a circle at import time); a light module of a lower layer is imported
    at the top."""
    modules, heavy = _modules(), _heavy_modules()
    misplaced = []
    for name, path in modules.items():
        if name.endswith("_worker"):  # run as scripts by other interpreters: they import what they need late
            continue
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zoo") and node.level == 0:
                    target = node.module
                elif isinstance(node, ast.Import) and node.names[0].name.startswith("zoo"):
                    target = node.names[0].name
                else:
                    continue
                a, b = _unit(name), _unit(target)
                if target not in heavy and b not in ("zoo", a) and _layer(b) < _layer(a):
                    misplaced.append(f"{path.relative_to(REPO)}:{node.lineno} imports {target}")
    assert not misplaced, "\n".join(misplaced)


def test_only_the_cli_imports_deploy() -> None:
    """Evaluation scores through the core's runtime interface (zoo.runtime); the deployment runtimes register
    into it by name (zoo.plugins.RUNTIMES), so no module under zoo/ but the CLI imports deploy, anywhere."""
    offenders = []
    for name, path in _modules().items():
        if name.startswith(("zoo.deploy", "zoo.cli")) or name == "zoo.__main__":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                       [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{name} imports {t}" for t in targets if t == "zoo.deploy" or t.startswith("zoo.deploy.")]
    assert not offenders
    from zoo.plugins import RUNTIMES
    from zoo.runtime import RUNTIME_NAMES

    assert set(RUNTIME_NAMES) <= set(RUNTIMES.names())
    assert RUNTIMES.get("onnxruntime").__module__ == "zoo.deploy.runtimes"  # registered by deploy when asked for
