"""dvc.yaml's `deps` cover all the code each stage runs, so a code change re-runs the stage instead of DVC
serving an output of the old code as up to date.

For each stage, the command its `cmd` runs (`maskcls <command>`) is looked up among the commands cli.py
registers; the code is cli.py itself, the project modules imported by that command's function, by the entry point
`main` (it runs for every command) and by the cli.py helpers they use, and their import closure, followed
statically through every `import maskcls...`, `from maskcls... import ...` and relative import, at any depth
(imports inside functions too), plus the `__init__.py` of each package on the way and the files of
`src/maskcls/resources` a module names.

cli.py is a dependency of every stage: it is the entry point each `cmd` runs, and it turns the command line and
params.yaml into the arguments of a stage's `run()` (`_params`, `_fold`), so an edit there can change an output.

Both pipeline files are checked: dvc.yaml and the pseudo-label round's pseudo/dvc.yaml, whose stages run in the
repository root (`wdir: ..`), so their paths read like dvc.yaml's.
"""

from __future__ import annotations

import ast
import copy
import shlex
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import typer.main

from maskcls import cli
from maskcls import params as params_mod

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = "maskcls"
CLI_MODULE = "maskcls.cli"
RESOURCES = SRC / PACKAGE / "resources"


# --- static import closure -------------------------------------------------------------------------------


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The file of project module `name` (a package's `__init__.py`), or None when it is not a project module."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = src.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(tree: ast.AST, module: str, is_package: bool, src: Path = SRC) -> set[str]:
    """Every module an `import` anywhere in `tree` (function bodies included) may load, as absolute names."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: `from . import x`, `from ..y import z`
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            for alias in node.names:  # `from maskcls.stages import train` loads the module maskcls.stages.train
                if module_file(f"{base}.{alias.name}", src):
                    found.add(f"{base}.{alias.name}")
    return found


def executed(name: str) -> list[str]:
    """Importing `a.b.c` runs `a/__init__.py`, `a/b/__init__.py` and `a/b/c.py`."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def resources_named(tree: ast.AST, resources: Path = RESOURCES) -> set[Path]:
    """Files of the resources folder whose name appears as a string in the module (how it opens them)."""
    if not resources.is_dir():
        return set()
    names = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    return {path for path in resources.iterdir() if path.is_file() and any(n.endswith(path.name) for n in names)}


def closure(modules, src: Path = SRC) -> set[Path]:
    """The files of `modules` and of everything they import from the project, recursively."""
    files: set[Path] = set()
    seen: set[str] = set()
    todo = [m for name in modules for m in executed(name)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, src)
        if path is None:
            continue
        files.add(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        files |= resources_named(tree, src / PACKAGE / "resources")
        for imported in imported_modules(tree, name, path.name == "__init__.py", src):
            todo += executed(imported)
    return files


# --- what each `maskcls <command>` runs --------------------------------------------------------------------


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def _modules_of_function(tree: ast.Module, name: str, module: str) -> set[str]:
    """Modules the function `name` of `tree` imports, following its uses of the module's other top-level functions."""
    functions = _functions(tree)
    found, todo, seen = set(), [name], set()
    while todo:
        fn = functions[todo.pop()]
        if fn.name in seen:
            continue
        seen.add(fn.name)
        found |= imported_modules(fn, module, is_package=False)
        todo += [n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id in functions]  # calls, callbacks
    return found


def cli_commands(app: typer.Typer = cli.app, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], str]:
    """Command words -> name of the cli.py function typer registered for them (sub-apps like `lb record` too)."""
    commands = {}
    for info in app.registered_commands:
        name = info.name or typer.main.get_command_name(info.callback.__name__)
        commands[(*prefix, name)] = info.callback.__name__
    for group in app.registered_groups:
        commands |= cli_commands(group.typer_instance, (*prefix, group.name))
    return commands


def entry_point(script: str = "maskcls") -> tuple[str, str]:
    """(module, function) the console script runs, from pyproject.toml: ('maskcls.cli', 'main')."""
    module, function = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"][script].split(":")
    return module, function


def command_code(words: tuple[str, ...], cli_file: Path = SRC / "maskcls" / "cli.py") -> set[Path]:
    """Every project file `maskcls <words>` runs: cli.py's module-level imports, the entry point's (`main`, run for
    every command), and the command's, with those of the cli.py helpers they use."""
    module, main = entry_point()
    assert module == CLI_MODULE, f"the maskcls script runs {module}, not {CLI_MODULE}: update this test"
    tree = ast.parse(cli_file.read_text(), filename=str(cli_file))
    function = cli_commands()[words]
    top_level = ast.Module(body=[n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.ClassDef)])
    modules = imported_modules(top_level, CLI_MODULE, False)
    modules |= _modules_of_function(tree, main, CLI_MODULE) | _modules_of_function(tree, function, CLI_MODULE)
    # cli.py itself, but not the imports of its other commands' functions (`maskcls synth` never loads the ledger)
    return {cli_file} | closure(executed(CLI_MODULE)[:-1]) | closure(modules)


def command_words(cmd: str, commands) -> tuple[str, ...] | None:
    """The registered command `cmd` runs (`maskcls validate ${data.raw_dir} --out x` -> ('validate',))."""
    tokens = shlex.split(cmd)
    if not tokens or tokens[0] != "maskcls":
        return None
    args = tokens[1:]
    for n in range(len(args), 0, -1):  # the longest registered prefix: `lb record` before `lb`
        if tuple(args[:n]) in commands:
            return tuple(args[:n])
    return None


# --- the check ---------------------------------------------------------------------------------------------


def _dep_paths(stage: dict) -> list[str]:
    deps = []
    for dep in stage.get("deps", []):
        deps += list(dep) if isinstance(dep, dict) else [dep]
    return [str(PurePosixPath(d.rstrip("/"))) for d in deps]


def covered(path: str, deps: list[str]) -> bool:
    """`path` is a listed dependency or inside a listed folder (interpolated deps like ${data.raw_dir} never match)."""
    return any(path == dep or PurePosixPath(path).is_relative_to(dep) for dep in deps)


def missing_code_deps(pipeline: dict, root: Path = REPO) -> dict[str, list[str]]:
    """stage -> files of the code it runs that its `deps` do not cover; `matrix`/`foreach` stages by their name.

    A stage whose cmd is not a registered `maskcls` command is reported too (its code cannot be known).
    """
    commands = cli_commands()
    problems = {}
    for name, stage in pipeline["stages"].items():
        stage = stage.get("do", stage)  # `foreach` stages keep cmd and deps under `do`
        cmds = stage["cmd"] if isinstance(stage["cmd"], list) else [stage["cmd"]]
        code: set[Path] = set()
        for cmd in cmds:
            words = command_words(cmd, commands)
            if words is None:
                problems[name] = [f"<cmd {cmd!r} runs no command cli.py registers>"]
                break
            code |= command_code(words)
        else:
            deps = _dep_paths(stage)
            missing = sorted(p.relative_to(root).as_posix() for p in code)
            missing = [path for path in missing if not covered(path, deps)]
            if missing:
                problems[name] = missing
    return problems


def stage_code(stage: dict, commands, root: Path = REPO) -> set[str]:
    body = stage.get("do", stage)
    cmds = body["cmd"] if isinstance(body["cmd"], list) else [body["cmd"]]
    return {p.relative_to(root).as_posix() for cmd in cmds for p in command_code(command_words(cmd, commands))}


def extra_code_deps(pipeline: dict, root: Path = REPO) -> dict[str, list[str]]:
    """stage -> package files among its `deps` that the code it runs never imports: each would re-run the stage
    for an edit that cannot change its outputs."""
    commands = cli_commands()
    extra = {}
    for name, stage in pipeline["stages"].items():
        code = stage_code(stage, commands, root)
        deps = _dep_paths(stage.get("do", stage))
        listed = [d for d in deps if d.startswith(f"src/{PACKAGE}/") and d.endswith(".py")]
        if unused := sorted(set(listed) - code):
            extra[name] = unused
    return extra


def check_deps_cover_code(pipeline: dict, root: Path = REPO) -> None:
    problems = missing_code_deps(pipeline, root)
    assert not problems, "dvc.yaml deps miss code the stage runs (add them to its deps):\n" + "\n".join(
        f"  {stage}: {', '.join(files)}" for stage, files in problems.items()
    )


PIPELINES = ("dvc.yaml", "pseudo/dvc.yaml")


def pipeline(name: str = "dvc.yaml") -> dict:
    return params_mod.read_yaml(REPO / name)


# --- tests -------------------------------------------------------------------------------------------------


def test_every_stage_of_every_pipeline_file_runs_in_the_repository_root():
    """The paths of the checks below are relative to the repository root: so must each stage's working folder be."""
    for name in PIPELINES:
        for stage, body in pipeline(name)["stages"].items():
            wdir = (REPO / name).parent / body.get("wdir", ".")
            assert wdir.resolve() == REPO, f"{name}: stage {stage} runs in {wdir}, not in the repository root"


@pytest.mark.parametrize("name", PIPELINES)
def test_every_stage_depends_on_all_the_code_it_runs(name):
    check_deps_cover_code(pipeline(name))


@pytest.mark.parametrize("name", PIPELINES)
def test_no_stage_depends_on_code_it_does_not_run(name):
    assert extra_code_deps(pipeline(name)) == {}


def test_an_unused_code_dep_is_named():
    broken = copy.deepcopy(pipeline())
    broken["stages"]["split"]["deps"].append("src/maskcls/models.py")
    assert extra_code_deps(broken) == {"split": ["src/maskcls/models.py"]}


def test_the_check_names_the_stage_and_the_file_whose_dep_is_removed():
    real = pipeline()
    before = missing_code_deps(real)  # empty when the test above passes; compared so this test stays about the check
    broken = copy.deepcopy(real)
    broken["stages"]["predict"]["deps"].remove("src/maskcls/models.py")
    after = missing_code_deps(broken)
    new = {stage: sorted(set(files) - set(before.get(stage, []))) for stage, files in after.items()}
    assert {stage: files for stage, files in new.items() if files} == {"predict": ["src/maskcls/models.py"]}
    try:
        check_deps_cover_code(broken)
    except AssertionError as exc:
        line = next(line for line in str(exc).splitlines() if line.strip().startswith("predict:"))
        assert "src/maskcls/models.py" in line
    else:
        raise AssertionError("the check passed a stage without models.py in its deps")


def test_a_folder_dep_covers_the_files_in_it_and_an_unknown_command_is_reported():
    data = copy.deepcopy(pipeline())
    data["stages"]["predict"]["deps"] = [d for d in data["stages"]["predict"]["deps"] if not d.startswith("src/")]
    data["stages"]["predict"]["deps"].append("src/maskcls/")
    assert "predict" not in missing_code_deps(data)
    data["stages"]["split"]["cmd"] = "maskcls no-such-command"
    assert "runs no command cli.py registers" in missing_code_deps(data)["split"][0]


def test_the_closure_follows_imports_inside_functions_packages_and_resources():
    # cli.py imports each stage inside its command's function; predict imports the training package's inference
    # and runtime modules (so the package's __init__ too), and models; relabel's overrides reads a csv
    predict = {p.relative_to(REPO).as_posix() for p in command_code(("predict",))}
    assert {
        "src/maskcls/stages/predict.py",
        "src/maskcls/stages/__init__.py",
        "src/maskcls/training/__init__.py",
        "src/maskcls/training/inference.py",
        "src/maskcls/models.py",
    } <= predict
    assert "src/maskcls/stages/train.py" not in predict  # prediction never loads the training stage
    assert {"src/maskcls/__init__.py", "src/maskcls/cli.py", "src/maskcls/params.py"} <= predict
    relabel = {p.relative_to(REPO).as_posix() for p in command_code(("relabel-age",))}
    assert "src/maskcls/resources/overrides.csv" in relabel
    # the command's own imports only, not those of cli.py's other commands
    synth = {p.relative_to(REPO).as_posix() for p in command_code(("synth",))}
    assert "src/maskcls/stages/synth.py" in synth
    assert {"src/maskcls/ledger.py", "src/maskcls/recipes.py", "src/maskcls/stages/train.py"}.isdisjoint(synth)


def test_the_train_stage_declares_every_key_that_changes_its_outputs():
    """The params digest in model.pt covers what the stage declares; a key missing from dvc.yaml would let DVC
    serve a model trained with another value of it."""
    import dataclasses

    from maskcls.params import Params, RuntimeParams
    from maskcls.stages.train import UNDECLARED_RUNTIME_KEYS, declared_params

    listed = [str(p) for p in pipeline()["stages"]["train"]["params"]]
    runtime = {p.removeprefix("runtime.") for p in listed if p.startswith("runtime.")}
    fields = {f.name for f in dataclasses.fields(RuntimeParams)}
    assert runtime == fields - set(UNDECLARED_RUNTIME_KEYS)
    # the whole recipe, the model's own section, the augmentations and the seed; nothing else
    assert set(listed) - {f"runtime.{k}" for k in runtime} == {"seed", "models.${item.model}", "aug", "train"}
    # and the digest covers exactly those
    digested = declared_params(Params(), "multihead")
    assert set(digested) == {"seed", "model", "aug", "train", "runtime"}
    assert set(digested["runtime"]) == runtime
