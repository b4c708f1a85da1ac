"""`dvc plots show`: a page that works offline, with one chart per question and titles in words.

The page template (.dvc/plots/offline.html, named by .dvc/config) inlines the charting libraries that DVC's default
page loads from a CDN; tools/vendor_vega.sh rebuilds it. The train stage writes per-epoch curve tables
(src/maskcls/curves.py) that the templates in .dvc/plots draw with integer epoch axes (docs/plots.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from configobj import ConfigObj

from maskcls import curves
from repo_copy import REPO, copy_repo, dvc

DVC_DIR = REPO / ".dvc"
PAGE = DVC_DIR / "plots" / "offline.html"
NOTICES = DVC_DIR / "plots" / "THIRD_PARTY_LICENSES"
CURVE_TEMPLATES = ("loss_curves", "f1_curves")
BUILTIN_TEMPLATES = {"confusion", "bar_horizontal", "linear", "scatter", "smooth", "simple"}
MAX_BYTES = 2 * 1024 * 1024
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
# `dvc plots show` writes one of these per chart: <div id = "..."><script ...> var spec = {...}; vegaEmbed(...)
CHART = re.compile(r'<div id = "([^"]+)">\s*<script type = "text/javascript">\s*var spec = (.*?);\s*vegaEmbed', re.S)


def cdn_libraries() -> dict[str, str]:
    """name -> version of the scripts DVC's default page loads from the CDN."""
    from dvc_render.vega import VegaRenderer

    return dict(re.findall(r"npm/(vega(?:-lite|-embed)?)@([\d.]+)", VegaRenderer.SCRIPTS))


def title_of(spec: dict) -> str:
    title = spec.get("title", "")
    return title.get("text", "") if isinstance(title, dict) else title


def epoch_axes(spec) -> list[dict]:
    """Every x encoding of `spec` (nested specs too) whose field is the epoch."""
    found = []
    if isinstance(spec, dict):
        x = spec.get("encoding", {}).get("x", {})
        if isinstance(x, dict) and x.get("field") == "epoch":
            found.append(x)
        for value in spec.values():
            found += epoch_axes(value)
    elif isinstance(spec, list):
        for value in spec:
            found += epoch_axes(value)
    return found


def looks_like_a_path(title: str) -> bool:
    return bool(re.search(r"\.(csv|tsv|json|ya?ml)$", title)) or title.startswith(("dvclive/", "metrics/"))


# --- the page template, fast ----------------------------------------------------------------------------------


def test_the_configured_page_template_is_the_offline_one():
    config = ConfigObj(str(DVC_DIR / "config"))
    assert (DVC_DIR / config["plots"]["html_template"]).resolve() == PAGE.resolve()
    html = PAGE.read_text(encoding="utf8")
    assert html.count("{plot_divs}") == 1  # DVC puts the charts there
    assert "{scripts}" not in html  # the placeholder DVC fills with its CDN <script src=...> tags
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I)
    assert PAGE.stat().st_size < MAX_BYTES


def test_the_page_inlines_the_library_versions_dvc_would_load_from_the_cdn():
    html = PAGE.read_text(encoding="utf8")
    wanted = cdn_libraries()
    assert set(wanted) == {"vega", "vega-lite", "vega-embed"}
    blocks = dict(re.findall(r'<script type="text/javascript" data-library="([^"]+)">(.*?)</script>', html, re.S))
    assert set(blocks) == {f"{name}@{version}" for name, version in wanted.items()}
    assert all(len(code) > 50_000 for code in blocks.values())  # the minified builds, not a stub
    assert f'"{wanted["vega"]}"' in blocks[f"vega@{wanted['vega']}"]  # vega.version, as the build declares it
    notices = NOTICES.read_text()
    assert notices.count("Redistribution and use in source and binary forms") == 3
    for name, version in wanted.items():
        assert f"{name} {version}" in notices
    script = (REPO / "tools" / "vendor_vega.sh").read_text()
    for name, version in wanted.items():
        assert f'"{name} {version} ' in script  # the generator pins the same builds
    assert os.access(REPO / "tools" / "vendor_vega.sh", os.X_OK)


def test_dvc_render_fills_the_page_without_cdn_tags(tmp_path):
    from dvc_render import VegaRenderer, render_html

    points = [{"epoch": "1", "head": "age", "split": "train", "loss": "0.9", "rev": "workspace"}]
    renderer = VegaRenderer(
        points, "dvclive/m-fold0/curves/loss.csv", template="loss_curves", template_dir=str(DVC_DIR / "plots"),
        x="epoch", y="loss", title="m fold 0, train and validation loss per head",
    )  # fmt: skip
    page = Path(render_html([renderer], tmp_path / "index.html", html_template=str(PAGE)))
    html = page.read_text(encoding="utf8")
    assert "cdn.jsdelivr" not in html and "{plot_divs}" not in html
    (_, spec), *_ = CHART.findall(html)
    assert title_of(json.loads(spec)) == "m fold 0, train and validation loss per head"


@pytest.mark.parametrize("name", CURVE_TEMPLATES)
def test_curve_templates_draw_whole_epochs(name):
    spec = json.loads((DVC_DIR / "plots" / f"{name}.json").read_text())
    assert "<DVC_METRIC_DATA>" in json.dumps(spec)
    axes = [enc for enc in _x_encodings(spec) if enc.get("field") == "<DVC_METRIC_X>"]
    assert axes and all(enc["axis"] == {"tickMinStep": 1, "format": "d"} for enc in axes)


def _x_encodings(spec) -> list[dict]:
    if isinstance(spec, dict):
        own = [spec["encoding"]["x"]] if isinstance(spec.get("encoding", {}).get("x"), dict) else []
        return own + [x for value in spec.values() for x in _x_encodings(value)]
    if isinstance(spec, list):
        return [x for value in spec for x in _x_encodings(value)]
    return []


def test_every_plot_in_dvc_yaml_is_titled_in_words():
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    definitions = [entry for entry in pipeline["plots"]]
    definitions += pipeline["stages"]["train"]["plots"]
    assert len(pipeline["stages"]["train"]["plots"]) == 3  # loss curves, F1 curves, confusion: per model and fold
    for entry in definitions:
        ((path, props),) = entry.items()
        assert Path(path).suffix in {".csv", ".json"}, f"{path}: a folder would give one chart per file"
        assert " " in props["title"] and not looks_like_a_path(props["title"]), path
        assert props.get("x_label") and props.get("y_label"), path
        template = props.get("template", "linear")
        assert template in BUILTIN_TEMPLATES or (DVC_DIR / "plots" / f"{template}.json").is_file(), path
    train_plots = [next(iter(entry)) for entry in pipeline["stages"]["train"]["plots"]]
    assert {Path(p).name for p in train_plots} >= {curves.LOSS, curves.F1}
    assert "src/maskcls/curves.py" in pipeline["stages"]["train"]["deps"]


def test_the_train_stage_keeps_dvcs_run_cache():
    """DVC saves no run-cache entry for a stage with an uncached output that is neither a plot nor a metric
    (dvc/stage/__init__.py, Stage.run): settings tried before would retrain instead of being restored."""
    train = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]
    uncached = [
        entry
        for entry in train["outs"]
        if isinstance(entry, dict) and not next(iter(entry.values())).get("cache", True)
    ]
    assert not uncached


def test_the_rendered_page_is_ignored_by_git():
    check = subprocess.run(["git", "check-ignore", "-q", "dvc_plots/index.html"], cwd=REPO)
    assert check.returncode == 0


# --- the curve tables -----------------------------------------------------------------------------------------


def _history() -> list[dict]:
    from maskcls.training.loop import epoch_record

    def scores(f1):
        return {key: {"f1": f1, "accuracy": f1 + 0.1} for key in ("mask", "age", "class18")}

    return [
        epoch_record(1, {"loss": 2.0, "mask": 0.5, "age": 1.0}, {"mask": 0.6, "age": 1.2}, scores(0.3), 1e-3),
        epoch_record(2, {"loss": 1.5, "mask": 0.4, "age": 0.8}, {"mask": 0.5, "age": 1.1}, scores(0.4), 5e-4),
    ]


def test_curve_tables_put_train_and_validation_of_a_head_side_by_side(tmp_path):
    out = curves.write(tmp_path / "dvclive" / "m-fold0", _history())
    loss = pd.read_csv(out / curves.LOSS)
    assert list(loss.columns) == ["epoch", "head", "split", "loss"]
    assert len(loss) == 2 * 2 * 2  # epochs x heads x (train, validation); the weighted train total is left out
    age = loss[loss["head"] == "age"].pivot(index="epoch", columns="split", values="loss")
    assert age.to_dict() == {"train": {1: 1.0, 2: 0.8}, "validation": {1: 1.2, 2: 1.1}}
    f1 = pd.read_csv(out / curves.F1)
    assert list(f1.columns) == ["epoch", "head", "f1"]
    assert f1.groupby("head")["f1"].apply(list).to_dict() == dict.fromkeys(("age", "class18", "mask"), [0.3, 0.4])
    assert f1["epoch"].dtype.kind == "i"


def test_curve_tables_are_the_same_bytes_for_the_same_history(tmp_path):
    first = curves.write(tmp_path / "a", _history())
    second = curves.write(tmp_path / "b", _history())
    for name in (curves.LOSS, curves.F1):
        assert (first / name).read_bytes() == (second / name).read_bytes()


# --- the real page, after `dvc repro` on a copy of the repository ---------------------------------------------


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """`dvc plots show` on a tiny run of two epochs (so the epoch axis has a range to put fractional ticks in)."""
    root = copy_repo(tmp_path_factory.mktemp("plots") / "repo", overrides={"train": {"epochs": 2}})
    dvc(root, "repro")
    out = root / "dvc_plots"
    dvc(root, "plots", "show", "-o", str(out))
    html = (out / "index.html").read_text(encoding="utf8")
    pipeline = yaml.safe_load((root / "params.yaml").read_text())["pipeline"]
    expected = 3 * len(pipeline["models"]) * len(pipeline["folds"]) + 3  # + the ensemble's three
    return root, out / "index.html", html, expected


@pytest.mark.slow
@pytest.mark.xdist_group("e2e")
def test_the_page_loads_nothing_from_the_network(page):
    root, _, html, _ = page
    assert not re.findall(r"<script[^>]*\bsrc\s*=", html, re.I)
    assert not re.findall(r"""\b(?:src|href)\s*=\s*["']?https?://""", html, re.I)
    for name, version in cdn_libraries().items():
        assert f'data-library="{name}@{version}"' in html  # inline, from the vendored template
    subprocess.run(["git", "check-ignore", "-q", "dvc_plots/index.html"], cwd=root, check=True)


@pytest.mark.slow
@pytest.mark.xdist_group("e2e")
def test_the_page_has_one_titled_chart_per_question(page):
    _, _, html, expected = page
    charts = {chart_id: json.loads(spec) for chart_id, spec in CHART.findall(html)}
    assert len(charts) == expected
    titles = sorted(title_of(spec) for spec in charts.values())
    assert all(" " in title and not looks_like_a_path(title) for title in titles), titles
    assert titles.count("mh fold 0, train and validation loss per head") == 1
    assert titles.count("mk fold 0, validation F1 per head") == 1
    assert "Ensemble, out-of-fold F1 per class" in titles
    loss = next(spec for spec in charts.values() if title_of(spec).startswith("mh fold 0, train and validation"))
    points = loss["data"]["values"]
    assert {(p["head"], p["split"]) for p in points} == {
        (head, split) for head in ("mask", "gender", "age") for split in ("train", "validation")
    }
    assert sorted({int(p["epoch"]) for p in points}) == [1, 2]


@pytest.mark.slow
@pytest.mark.xdist_group("e2e")
def test_epoch_axes_are_whole_numbers_in_the_page(page):
    _, _, html, _ = page
    curve_specs = [json.loads(spec) for chart_id, spec in CHART.findall(html) if "_curves_" in chart_id]
    assert len(curve_specs) == 4  # loss and F1, two models
    for spec in curve_specs:
        axes = epoch_axes(spec)
        assert axes and all(x["axis"] == {"tickMinStep": 1, "format": "d"} for x in axes)


@pytest.mark.slow
@pytest.mark.xdist_group("e2e")
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium to render the page headless")
def test_a_browser_draws_every_chart_offline(page, tmp_path):
    """Headless chromium, no network: every chart is drawn, epoch ticks are whole, class axes run 00..17."""
    _, index, html, expected = page

    def dump(path: Path) -> str:
        cmd = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--virtual-time-budget=20000", "--dump-dom", path.as_uri(),
        ]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True).stdout

    # as shipped: vega-embed draws on canvas
    assert len(re.findall(r'<canvas[^>]*\bclass="marks"', dump(index))) == expected
    # the same page drawn as SVG, whose text can be read back
    as_svg = tmp_path / "svg.html"
    as_svg.write_text(re.sub(r"vegaEmbed\('#([^']+)', spec\);", r"vegaEmbed('#\1', spec, {renderer: 'svg'});", html))
    dom = dump(as_svg)
    assert len(re.findall(r'<svg[^>]*\bclass="marks"', dom)) == expected
    epoch_ticks = {
        label
        for axis in re.findall(r"""aria-label="X-axis titled 'epoch'[^"]*">(.*?)role-axis-title""", dom, re.S)
        for group in re.findall(r'role-axis-label"[^>]*>(.*?)</g>', axis, re.S)
        for label in re.findall(r"<text[^>]*>([^<]*)</text>", group)
    }
    assert epoch_ticks == {"1", "2"}
    per_class = re.search(r"""aria-label="Y-axis titled 'class'[^"]*">(.*?)role-axis-title""", dom, re.S)[1]
    labels = re.findall(r"<text[^>]*>([^<]*)</text>", re.search(r'role-axis-label"[^>]*>(.*?)</g>', per_class, re.S)[1])
    assert [label[:2] for label in labels] == [f"{c:02d}" for c in range(18)]
