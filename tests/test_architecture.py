"""The layering docs/architecture.md describes: CLI -> stages -> library, each stage reading other stages' files
through `maskcls.artifacts`, never through another stage module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
STAGES = SRC / "maskcls" / "stages"


def project_imports(path: Path) -> set[str]:
    """Absolute names of the maskcls modules (and `from maskcls.x import name` targets) a file imports anywhere."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("maskcls")}


def stage_modules() -> list[Path]:
    return sorted(p for p in STAGES.glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", stage_modules(), ids=lambda p: p.stem)
def test_no_stage_module_imports_another(path):
    others = {f"maskcls.stages.{p.stem}" for p in stage_modules()} - {f"maskcls.stages.{path.stem}"}
    assert project_imports(path) & others == set()


def test_library_modules_never_import_stages_or_the_cli():
    entry_points = ("cli.py", "__main__.py")  # `maskcls` and `python -m maskcls`
    library = [p for p in (SRC / "maskcls").rglob("*.py") if STAGES not in p.parents and p.name not in entry_points]
    assert library  # the glob found the package
    offenders = {
        p.relative_to(SRC).as_posix(): sorted(
            n for n in project_imports(p) if n.startswith(("maskcls.stages", "maskcls.cli"))
        )
        for p in library
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_an_import_of_another_stage(tmp_path):
    module = tmp_path / "evaluate.py"
    module.write_text("def run():\n    from maskcls.stages.ensemble import model_views\n")
    assert "maskcls.stages.ensemble" in project_imports(module)
