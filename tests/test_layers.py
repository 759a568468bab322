"""DESIGN.md's layers: `edge` is the bottom, imports nothing heavy at load, and never torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "edge": {"torch", "trainer", "calibration", "deploy", "demo"},
    "calibration": {"torch", "trainer", "deploy", "demo"},
    "trainer": {"deploy", "demo"},
    "deploy": {"trainer", "torch", "demo"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down_only(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_import_edge_loads_no_heavy_library():
    code = (
        "import sys, edge, edge.manifest, edge.nms, edge.decode, edge.detector, edge.commands;"
        "print(sorted(m for m in ('torch', 'onnxruntime', 'cv2', 'tensorrt', 'pycuda', 'gi', 'onnx')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_package_says_what_it_is_and_what_it_must_not_import(package):
    docstring = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))
    assert docstring, f"{package}/__init__.py has no docstring"
    for stale in ("later issue", "being built", "so far"):
        assert stale not in docstring.lower(), f"{package}: {stale!r}"
    must_not = docstring.split("Must not import:", 1)[1]
    for name in FORBIDDEN[package] - {"demo"}:
        assert f"`{name}`" in must_not or name in must_not, f"{package} does not name {name}"
