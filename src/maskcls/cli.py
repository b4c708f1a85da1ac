"""The `maskcls` command line. Thin: parse, load params, call one module's `run()`.

Stage modules are imported inside each command so `maskcls --help` and the light stages start fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from maskcls.errors import MaskclsError, ParamsError

# albumentations otherwise checks for updates over the network on import.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="maskcls: mask / gender / age photo classification, from competition folders to a submission.",
)

PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="params file")
ROOT = typer.Option(Path("."), "--root", help="repository root the pipeline paths are relative to")
ROUND = typer.Option(
    1,
    "--round",
    min=1,
    max=2,
    help="1: the pipeline (dvc.yaml); 2: the pseudo-label round (pseudo/dvc.yaml): pseudo-labelled eval photos join "
    "training, every result goes under pseudo/",
)


def _params(path: Path):
    from maskcls import params

    return params.load(path)


def _fold(value: str) -> int:
    """Accept `2` or `fold2`, as DVC stage names spell it."""
    return int(value.removeprefix("fold"))


@app.command("check-params")
def check_params(
    params: Path = PARAMS,
    root: Path = ROOT,
    generated: Path = typer.Option(Path("data/sample"), help="the synth stage's folder: may not exist yet"),
):
    """Check params.yaml and data.raw_dir before any stage runs; write data/checked/params.ok."""
    from maskcls.stages import check_params as stage

    stage.run(params, root=root, generated=generated)
    typer.echo(f"{params}: OK")


@app.command()
def synth(
    out: Path = typer.Option(..., help="folder to write the sample into"),
    people: int = typer.Option(300, help="train people (7 photos each)"),
    eval_people: int = typer.Option(150, help="eval people (7 photos each)"),
    seed: int = typer.Option(0, help="same seed, same bytes"),
):
    """Generate a look-alike sample in the exact competition layout."""
    from maskcls.stages import synth as stage

    stage.run(out, people=people, eval_people=eval_people, seed=seed)


@app.command()
def validate(
    raw_dir: Path = typer.Argument(..., help="competition folder holding train/ and eval/"),
    out: Path = typer.Option(None, help="write the image index (train.csv, eval.csv) here when valid"),
):
    """Check a competition folder; exit non-zero naming each broken file or row."""
    from maskcls.stages import validate as stage

    stage.run(raw_dir, out=out)


@app.command("relabel-age")
def relabel_age(params: Path = PARAMS, root: Path = ROOT):
    """Apply label overrides and the age threshold; write training targets per model."""
    from maskcls.stages import relabel as stage

    stage.run(_params(params), root=root)


@app.command()
def split(params: Path = PARAMS, root: Path = ROOT):
    """Person-level fold assignment."""
    from maskcls.stages import split as stage

    stage.run(_params(params), root=root)


@app.command()
def cache(params: Path = PARAMS, root: Path = ROOT):
    """Decode, crop and resize every image once into memory-mappable arrays."""
    from maskcls.stages import cache as stage

    stage.run(_params(params), root=root)


@app.command()
def train(
    model: str = typer.Option(..., help="a name under `models` in params"),
    fold: str = typer.Option("0", help="fold to hold out (2 or fold2)"),
    node_rank: int = typer.Option(
        0, help="runtime.nodes > 1: this machine's number; 0 is the machine that runs DVC and writes the outputs"
    ),
    params: Path = PARAMS,
    root: Path = ROOT,
    round: int = ROUND,
):
    """Train one model on one fold (runtime.devices x runtime.nodes > 1: through torchrun, docs/scaling.md)."""
    from maskcls import portable
    from maskcls.stages import train as stage
    from maskcls.training import distributed

    portable.verify()
    settings = _params(params)
    settings.model(model)  # an unknown model is a params error here, before torchrun starts processes
    if not 0 <= node_rank < settings.runtime.nodes:
        raise ParamsError(
            f"--node-rank {node_rank}: runtime.nodes is {settings.runtime.nodes}, so machines are numbered "
            f"0..{settings.runtime.nodes - 1} (0: the machine that runs DVC)"
        )
    if distributed.requested_size(settings.runtime) > 1 and not distributed.under_torchrun():
        import subprocess

        # torchrun starts runtime.devices processes here, each running this same command line.
        raise typer.Exit(subprocess.call(distributed.launch_command(settings.runtime, sys.argv[1:], node_rank)))
    stage.run(settings, model=model, fold=_fold(fold), root=root, round=round)


@app.command()
def predict(
    model: str = typer.Option(..., help="a name under `models` in params"),
    fold: str = typer.Option("0", help="fold (2 or fold2)"),
    params: Path = PARAMS,
    root: Path = ROOT,
    round: int = ROUND,
):
    """Class probabilities of one trained model for eval and its out-of-fold train photos."""
    from maskcls import portable
    from maskcls.stages import predict as stage

    portable.verify()
    stage.run(_params(params), model=model, fold=_fold(fold), root=root, round=round)


@app.command()
def ensemble(params: Path = PARAMS, root: Path = ROOT, round: int = ROUND):
    """Combine folds and models into the submission."""
    from maskcls.stages import ensemble as stage

    stage.run(_params(params), root=root, round=round)


@app.command()
def evaluate(params: Path = PARAMS, root: Path = ROOT, round: int = ROUND):
    """Out-of-fold and (sample only) holdout metrics and plots."""
    from maskcls.stages import evaluate as stage

    stage.run(_params(params), root=root, round=round)


@app.command("pseudo-label")
def pseudo_label(params: Path = PARAMS, root: Path = ROOT):
    """The pseudo-label round's first stage: eval photos the first round's ensemble is sure of (pseudo.threshold)."""
    from maskcls.stages import pseudo_label as stage

    stage.run(_params(params), root=root)


@app.command()
def report(
    params: Path = PARAMS,
    root: Path = ROOT,
    collect_age: bool = typer.Option(
        False,
        "--collect-age",
        help="instead, refresh age_tradeoff.csv from `dvc exp show`: the runs that differ from params.yaml only in "
        "relabel_age.old_from; then `dvc repro report` draws them",
    ),
):
    """The out-of-fold error report: reports/index.html with contact sheets of the worst mistakes."""
    from maskcls.stages import report as stage

    if collect_age:
        table = stage.collect_age_tradeoff(_params(params), root=root)
        points = ", ".join(f"{x}: {y:.4f}" for x, y in zip(table["old_from"], table["oof_f1"], strict=True))
        typer.echo(f"age_tradeoff.csv: {len(table)} run(s) {points}".rstrip())
        typer.echo("next: dvc repro report")
        return
    stage.run(_params(params), root=root)


@app.command("check-submission")
def check_submission(
    submission: Path = typer.Argument(..., help="submission csv"),
    info: Path = typer.Argument(..., help="the competition's eval/info.csv"),
):
    """Check a submission against info.csv: rows, ImageID order, ans in 0..17."""
    from maskcls import submission as sub

    sub.check_file(submission, info)
    typer.echo(f"{submission}: OK")


@app.command("env")
def env(params: Path = PARAMS):
    """The machine and CPU mode the train and predict stages run under here, as JSON (`lb record` stores it)."""
    import json

    from maskcls import portable

    typer.echo(json.dumps(portable.environment(params), sort_keys=True))


recipe_app = typer.Typer(no_args_is_help=True, help="Named recipes (recipes/*.yaml) run as DVC experiments.")
app.add_typer(recipe_app, name="recipe")


@recipe_app.command("list")
def recipe_list(root: Path = ROOT):
    """Available recipes and what each reproduces."""
    from maskcls import recipes

    names = recipes.names(root)
    width = max(map(len, names), default=0)
    for name in names:
        recipe = recipes.load(name, root)
        typer.echo(f"{name:{width}} {'[GPU] ' if recipe.gpu else ''}{recipe.description}")


@recipe_app.command("show")
def recipe_show(
    name: str,
    quick: bool = typer.Option(False, help="show the CPU/sample-sized version"),
    root: Path = ROOT,
):
    """Print the params.yaml a recipe runs with."""
    from maskcls import recipes

    typer.echo(recipes.resolve(recipes.load(name, root), recipes.committed_params(root), quick=quick), nl=False)


@recipe_app.command("run")
def recipe_run(
    name: str,
    quick: bool = typer.Option(False, help="shrink to one fold, one epoch, small inputs: runs on CPU with the sample"),
    queue: bool = typer.Option(False, help="queue it (`dvc queue start` runs the queue)"),
    force: bool = typer.Option(False, help="replace an experiment of the same name"),
    root: Path = ROOT,
):
    """Apply a recipe to the committed params.yaml and run it as the DVC experiment NAME."""
    from maskcls import recipes

    exp = recipes.run(name, quick=quick, queue=queue, force=force, root=root)
    typer.echo(f"experiment {exp}: compare with `dvc exp show` and `dvc metrics diff`")


exp_app = typer.Typer(no_args_is_help=True, help="Experiments: keep one in git with exactly the files that belong.")
app.add_typer(exp_app, name="exp")


@exp_app.command("keep")
def exp_keep(name: str = typer.Argument(..., help="the experiment, as `dvc exp show` names it"), root: Path = ROOT):
    """`dvc exp apply NAME`, then `git add` params.yaml, dvc.lock and the pipeline's uncached metrics and plots."""
    from maskcls import experiments

    files = experiments.keep(name, root)
    typer.echo(f"staged {len(files)} paths: {' '.join(files)}")
    typer.echo(f'next: git commit -m "{name}"')


lb_app = typer.Typer(no_args_is_help=True, help="Leaderboard ledger: scores tied to the exact revision behind them.")
app.add_typer(lb_app, name="lb")


@lb_app.command("record")
def lb_record(
    public: float = typer.Option(..., help="public leaderboard macro F1"),
    private: float = typer.Option(None, help="private leaderboard macro F1, once known"),
    rev: str = typer.Option(None, help="git revision that produced the submission (default HEAD)"),
    exp: str = typer.Option(None, help="DVC experiment that produced the submission"),
    note: str = typer.Option("", help="free text"),
    root: Path = ROOT,
):
    """Add a row to leaderboard.csv (commit it with git)."""
    from maskcls import ledger

    row = ledger.record(root, public=public, private=private, rev=rev, exp=exp, note=note)
    typer.echo(f"recorded row {row['id']}: rev {row['rev'][:10]}, submission md5 {row['submission_md5']}")
    machine = f"{row['env_cpu']}, CPU {row['env_cpu_mode']}, {row['env_threads']} threads, GPU {row['env_gpu']}"
    typer.echo(f"built on: {machine}")


@lb_app.command("show")
def lb_show(root: Path = ROOT):
    """The ledger sorted by public score, local CV beside it."""
    from maskcls import ledger

    typer.echo(ledger.show(root))


@lb_app.command("reproduce")
def lb_reproduce(
    row_id: int = typer.Argument(..., help="row id from `maskcls lb show`"),
    from_scratch: bool = typer.Option(False, help="ignore every cache and recompute all stages"),
    keep: bool = typer.Option(False, help="keep the worktree for inspection"),
    root: Path = ROOT,
):
    """Rebuild a row's submission in a separate worktree and compare md5s (and the machine with the recorded one)."""
    from maskcls import ledger

    check = ledger.check_environment(root, row_id)  # before rebuilding: a known difference is said up front
    typer.echo(f"row {row_id}: {check.summary()}", err=True)
    same, rebuilt = ledger.reproduce(root, row_id, from_scratch=from_scratch, keep=keep)
    if not same:
        typer.secho(f"row {row_id}: rebuilt submission md5 {rebuilt} does NOT match the ledger", fg="red", err=True)
        typer.echo(check.advice(), err=True)
        raise typer.Exit(1)
    typer.echo(f"row {row_id}: rebuilt submission md5 {rebuilt} matches")


def main() -> None:
    try:
        # Before anything imports torch: the CPU kernels' instruction-set cap of runtime.portable (maskcls.portable).
        from maskcls import portable

        portable.apply_from_params(portable.params_path_from_argv(sys.argv[1:]))
        app()
    except MaskclsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
