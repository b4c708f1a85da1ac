"""The HTML error report: which mistakes it shows and in what order, class order of its tables, same bytes on a
rerun, a self-contained folder, and the page as a real browser renders it."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from maskcls import layout, report

NAMES = [layout.class_name(c) for c in range(layout.NUM_CLASSES)]


def prob_row(pred: int, p: float) -> np.ndarray:
    """A probability row whose argmax is `pred` with probability `p` (> 1/18), the rest spread evenly."""
    row = np.full(layout.NUM_CLASSES, (1 - p) / (layout.NUM_CLASSES - 1))
    row[pred] = p
    return row


# (true, predicted, p(predicted)) per row: a hand-made set of mistakes and correct answers.
CASE = [
    (3, 4, 0.50),  # 0  3 -> 4
    (0, 1, 0.40),  # 1  0 -> 1
    (10, 2, 0.60),  # 2  10 -> 2
    (3, 4, 0.90),  # 3  3 -> 4
    (0, 1, 0.95),  # 4  0 -> 1
    (2, 10, 0.99),  # 5  2 -> 10: the single most confident mistake, but its pair is rare
    (3, 4, 0.70),  # 6  3 -> 4
    (0, 1, 0.40),  # 7  0 -> 1 (ties row 1: the lower row first)
    (10, 2, 0.80),  # 8  10 -> 2
    (0, 1, 0.60),  # 9  0 -> 1
    (10, 2, 0.30),  # 10 10 -> 2
    (5, 5, 0.90),  # 11 right
    (2, 2, 0.90),  # 12 right
    (10, 10, 0.90),  # 13 right
]


def case_arrays():
    truth = np.array([t for t, _, _ in CASE])
    probs = np.stack([prob_row(p, q) for _, p, q in CASE])
    return truth, probs


def photos(n: int, seed: int = 0, size: tuple[int, int] = (40, 30)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)


def sample(n: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, layout.NUM_CLASSES, n)
    logits = rng.normal(size=(n, layout.NUM_CLASSES))
    logits[np.arange(n), truth] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ids = [f"{i:06d}_female_Asian_{20 + i % 50}/mask{1 + i % 5}.jpg" for i in range(n)]
    return truth, probs, photos(n, seed), ids


# --- mistake selection ---------------------------------------------------------------------------------------


def test_the_most_frequent_pairs_come_first_ties_in_numeric_class_order():
    truth, probs = case_arrays()
    found = report.worst_mistakes(truth, probs)
    # 0->1 four times; 3->4 and 10->2 three times each (3 before 10 as numbers, not as text); 2->10 once.
    assert [(c.true, c.pred, c.count) for c in found] == [(0, 1, 4), (3, 4, 3), (10, 2, 3), (2, 10, 1)]


def test_within_a_pair_the_most_confident_mistake_comes_first():
    truth, probs = case_arrays()
    found = {(c.true, c.pred): c for c in report.worst_mistakes(truth, probs)}
    assert found[(0, 1)].rows.tolist() == [4, 9, 1, 7]  # 0.95, 0.60, then the 0.40 tie by row
    assert found[(3, 4)].rows.tolist() == [3, 6, 0]
    assert found[(10, 2)].rows.tolist() == [8, 2, 10]
    np.testing.assert_allclose(found[(0, 1)].p_wrong, [0.95, 0.60, 0.40, 0.40])
    for c in found.values():
        assert (np.diff(c.p_wrong) <= 0).all()
        assert (truth[c.rows] == c.true).all() and (probs[c.rows].argmax(1) == c.pred).all()


def test_the_limits_keep_the_top_pairs_and_the_worst_photos():
    truth, probs = case_arrays()
    found = report.worst_mistakes(truth, probs, top_pairs=2, per_pair=2)
    assert [(c.true, c.pred, c.count, c.rows.tolist()) for c in found] == [(0, 1, 4, [4, 9]), (3, 4, 3, [3, 6])]


def test_a_given_decision_overrides_the_argmax():
    truth, probs = case_arrays()
    pred = probs.argmax(1)
    pred[11] = 6  # a vote that disagrees with the averaged probabilities
    found = report.worst_mistakes(truth, probs, pred)
    assert (5, 6, 1) in [(c.true, c.pred, c.count) for c in found]
    assert report.worst_mistakes(truth, np.eye(18)[truth]) == []


# --- the page --------------------------------------------------------------------------------------------------


class Page(HTMLParser):
    """The <img> attributes and the confusion matrix (header cells, row header, cell count) of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[dict] = []
        self.matrix_header: list[str] = []
        self.matrix_rows: list[tuple[str, int]] = []
        self.per_class_rows: list[str] = []
        self._table = None
        self._section = None  # thead / tbody
        self._cell = None
        self._text = ""
        self._row_name = None
        self._row_cells = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        elif tag == "table":
            self._table = attrs.get("id")
        elif tag in ("thead", "tbody"):
            self._section = tag
        elif tag == "tr":
            self._row_name, self._row_cells = None, 0
        elif tag in ("th", "td"):
            self._cell, self._text = tag, ""

    def handle_data(self, data):
        if self._cell:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("th", "td") and self._cell:
            text, self._cell = self._text.strip(), None
            if self._table == "confusion-matrix" and self._section == "thead" and tag == "th":
                self.matrix_header.append(text)
            elif self._table in ("confusion-matrix", "per-class-f1") and self._section == "tbody":
                if tag == "th":
                    self._row_name = text
                else:
                    self._row_cells += 1
        elif tag == "tr" and self._section == "tbody" and self._row_name is not None:
            if self._table == "confusion-matrix":
                self.matrix_rows.append((self._row_name, self._row_cells))
            elif self._table == "per-class-f1":
                self.per_class_rows.append(self._row_name)


def matrix_cells(page_text: str) -> np.ndarray:
    """The counts in the confusion matrix's 18 x 18 cells (empty = 0)."""
    rows = []
    for line in page_text.split('id="confusion-matrix"')[1].split("</table>")[0].splitlines():
        if line.startswith('<tr><th scope="row">'):
            cells = [c.split(">", 1)[1].split("</td", 1)[0] for c in line.split("<td")[1:19]]
            rows.append([int(c or 0) for c in cells])
    return np.array(rows)


def test_the_confusion_matrix_is_in_numeric_class_order(tmp_path):
    truth = np.array([2, 2, 10, 10, 10, 3])
    pred = np.array([10, 2, 2, 10, 10, 3])
    probs = np.eye(18)[pred] * 0.9 + 0.1 / 18
    index = report.write_report(tmp_path / "r", truth, probs, photos(6), [f"p{i}" for i in range(6)])
    text = index.read_text()
    page = Page(text)
    assert page.matrix_header[1:19] == NAMES and page.matrix_header[0].startswith("actual")
    assert [name for name, _ in page.matrix_rows] == NAMES
    assert all(cells == 19 for _, cells in page.matrix_rows)  # 18 classes and the row total
    assert page.per_class_rows == NAMES
    assert NAMES.index("02 wear/male/>=60") < NAMES.index("10 incorrect/female/30-59")
    cells = matrix_cells(text)
    expected = np.zeros((18, 18), dtype=int)
    np.add.at(expected, (truth, pred), 1)
    np.testing.assert_array_equal(cells, expected)  # rows actual, columns predicted
    assert text.index("02 wear/male/&gt;=60") < text.index("10 incorrect/female/30-59")


def test_same_inputs_give_the_same_bytes(tmp_path):
    truth, probs, images, ids = sample()
    kwargs = {"age_tradeoff": [(60, 0.70), (57, 0.74), (58, 0.73)], "per_class_holdout_f1": np.linspace(0, 1, 18)}
    first = report.write_report(tmp_path / "a", truth, probs, images, ids, **kwargs).parent
    second = report.write_report(tmp_path / "b", truth, probs, images, ids, **kwargs).parent
    files = sorted(p.name for p in first.iterdir())
    assert files == sorted(p.name for p in second.iterdir())
    assert (
        "index.html" in files and "age_tradeoff.png" in files and len([f for f in files if f[:8] == "mistakes"]) == 12
    )
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # Rewritten in place: the folder is replaced whole, the same bytes again, no temporary left beside it.
    (first / "stale.png").write_bytes(b"old")
    report.write_report(first, truth, probs, images, ids, **kwargs)
    assert sorted(p.name for p in first.iterdir()) == files
    assert all((first / n).read_bytes() == (second / n).read_bytes() for n in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_a_failed_write_leaves_the_previous_report(tmp_path, monkeypatch):
    truth, probs, images, ids = sample(60)
    out = tmp_path / "r"
    report.write_report(out, truth, probs, images, ids)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "age_chart", broken)
    with pytest.raises(RuntimeError):
        report.write_report(out, truth, probs, images[::-1], ids, age_tradeoff=[(57, 0.7), (60, 0.6)])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_the_folder_is_self_contained(tmp_path):
    truth, probs, images, ids = sample(120)
    index = report.write_report(tmp_path / "r", truth, probs, images, ids + [])
    text = index.read_text()
    page = Page(text)
    assert page.images
    for img in page.images:
        src = img["src"]
        assert "/" not in src and ":" not in src, src  # a file beside index.html
        with Image.open(index.parent / src) as png:
            assert png.format == "PNG" and (png.width, png.height) == (int(img["width"]), int(img["height"]))
    for marker in ("http:", "https:", "<link", "<script src", "@import", "url("):
        assert marker not in text


def test_a_sheet_shows_the_worst_photos_with_their_captions(tmp_path):
    truth, probs = case_arrays()
    images = np.zeros((len(truth), 40, 30, 3), dtype=np.uint8)
    images[4] = 255  # the most confident 0 -> 1 mistake: white, first tile of its sheet
    ids = [f"id{i}" for i in range(len(truth))]
    index = report.write_report(tmp_path / "r", truth, probs, images, ids)
    with Image.open(index.parent / "mistakes_00_to_01.png") as png:
        sheet = np.asarray(png.convert("RGB"))
    tile_h = round(40 * report.TILE_WIDTH / 30)
    assert sheet.shape[1] == 4 * (report.TILE_WIDTH + 2 * report.PAD)  # four photos in one row
    first = sheet[report.PAD : report.PAD + tile_h, report.PAD : report.PAD + report.TILE_WIDTH]
    second = sheet[report.PAD : report.PAD + tile_h, 3 * report.PAD + report.TILE_WIDTH :][:, : report.TILE_WIDTH]
    assert (first == 255).all() and (second == 0).all()
    assert (sheet[report.PAD + tile_h :, : report.TILE_WIDTH] < 128).any()  # a caption is drawn
    text = index.read_text()
    section = text.split('id="pair-00-01"')[1].split("</figure>")[0]
    assert [section.index(f"<td>id{r}</td>") for r in (4, 9, 1, 7)] == sorted(
        section.index(f"<td>id{r}</td>") for r in (4, 9, 1, 7)
    )
    assert "0.950" in section


def test_long_ids_fit_the_tile():
    font = report._font()
    assert report._fit("short", 128, font) == ["short"]
    long = "000001_female_Asian_45/incorrect_mask.jpg" * 2
    lines = report._fit(long, 128, font)
    assert len(lines) == 2 and lines[1].startswith("..") and long.endswith(lines[1][2:])
    assert all(font.getlength(line) <= 128 for line in lines)


def test_ids_outside_latin1_are_drawn_and_kept_in_the_page(tmp_path):
    truth, probs = case_arrays()
    ids = [f"사람{i}" for i in range(len(truth))]
    index = report.write_report(tmp_path / "r", truth, probs, photos(len(truth)), ids)
    assert "<td>사람4</td>" in index.read_text(encoding="utf-8")


def test_age_tradeoff_chart_only_with_several_thresholds(tmp_path):
    truth, probs, images, ids = sample(60)
    for name, points in (("none", None), ("one", [(60, 0.7)])):
        index = report.write_report(tmp_path / name, truth, probs, images, ids, age_tradeoff=points)
        assert not (index.parent / "age_tradeoff.png").exists()
        assert "dvc exp run -S relabel_age.old_from=57" in index.read_text()
    index = report.write_report(tmp_path / "two", truth, probs, images, ids, age_tradeoff=[(60, 0.70), (57, 0.75)])
    text = index.read_text()
    assert (index.parent / "age_tradeoff.png").is_file()
    assert "dvc exp run" not in text and "Best: old_from=57" in text
    assert text.index('<td class="num">57</td>') < text.index('<td class="num">60</td>')  # sorted by threshold


def test_holdout_f1_column_when_given(tmp_path):
    truth, probs, images, ids = sample(60)
    without = report.write_report(tmp_path / "a", truth, probs, images, ids).read_text()
    holdout = np.round(np.linspace(0.1, 0.9, 18), 3)
    with_it = report.write_report(tmp_path / "b", truth, probs, images, ids, per_class_holdout_f1=holdout).read_text()
    assert "holdout F1" not in without and "holdout F1" in with_it
    assert '<td class="num">0.147</td>' in with_it  # holdout[1]
    with pytest.raises(ValueError, match="per_class_holdout_f1"):
        report.write_report(tmp_path / "c", truth, probs, images, ids, per_class_holdout_f1=holdout[:17])


def test_mismatched_inputs_are_refused(tmp_path):
    truth, probs, images, ids = sample(20)
    with pytest.raises(ValueError, match="ids"):
        report.write_report(tmp_path / "r", truth, probs, images, ids[:-1])
    with pytest.raises(ValueError, match="probs"):
        report.write_report(tmp_path / "r", truth, probs[:, :17], images, ids)
    with pytest.raises(ValueError, match="images"):
        report.write_report(tmp_path / "r", truth, probs, images[..., 0], ids)
    assert not (tmp_path / "r").exists()


# --- in a browser --------------------------------------------------------------------------------------------


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("CI is set but no chromium binary is on PATH: `make report-deps` installs it (root, apt-get)")
    pytest.skip("no chromium binary on PATH (`make report-deps` installs it); under CI this test fails instead")


def dump_dom(browser: str, index, tmp_path) -> str:
    """The page as headless Chromium leaves it after running its scripts."""
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        index.resolve().as_uri(),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_page_renders_in_headless_chromium(tmp_path):
    browser = chromium()
    truth, probs, images, ids = sample(200)
    index = report.write_report(
        tmp_path / "report", truth, probs, images, ids, age_tradeoff=[(57, 0.74), (58, 0.75), (60, 0.72)]
    )
    page = Page(dump_dom(browser, index, tmp_path))
    assert len(page.images) == 13  # 12 contact sheets and the age chart
    not_loaded = [img["src"] for img in page.images if img.get("data-loaded") != "1"]
    assert not_loaded == [], "images that did not load in the browser"
    assert all(int(img["data-natural-width"]) > 0 for img in page.images)
    assert page.matrix_header[1:19] == NAMES
    assert [name for name, _ in page.matrix_rows] == NAMES
    assert [cells for _, cells in page.matrix_rows] == [19] * 18  # 18 predicted columns and the row total


# --- the report stage ------------------------------------------------------------------------------------------


def exp_state(rev, old_from, oof_f1, name=None, epochs=None, experiments=None):
    """One state as `dvc exp show --json` writes it (DVC 3): params and metrics files under `data`."""
    values = {"relabel_age": {"old_from": old_from}}
    if epochs is not None:
        values["train"] = {"epochs": epochs}
    metrics = {} if oof_f1 is None else {"metrics/eval.json": {"data": {"oof_f1": oof_f1, "oof_acc": 0.7}}}
    return {
        "rev": rev,
        "name": name,
        "data": {"rev": rev, "params": {"params.yaml": {"data": values}}, "metrics": metrics, "deps": {}, "outs": {}},
        "error": None,
        "experiments": experiments,
    }


def test_age_tradeoff_keeps_runs_that_differ_from_params_only_in_the_threshold():
    from maskcls import params
    from maskcls.stages import report as stage

    shown = [
        exp_state("workspace", 58, 0.61),
        exp_state(
            "a" * 40,
            58,
            0.61,  # the commit the workspace matches: the same run, counted once
            experiments=[
                {"revs": [exp_state("b" * 40, 57, 0.63, name="old-57")], "executor": None, "name": "old-57"},
                {"revs": [exp_state("c" * 40, 60, 0.58, name="old-60")], "executor": None, "name": "old-60"},
                {"revs": [exp_state("d" * 40, 59, 0.70, name="longer", epochs=12)], "executor": None, "name": "x"},
                {"revs": [exp_state("e" * 40, 56, None, name="failed")], "executor": None, "name": "failed"},
                {"revs": [exp_state("f" * 40, 10, 0.9, name="invalid")], "executor": None, "name": "invalid"},
            ],
        ),
    ]
    table = stage.age_tradeoff_from_experiments(shown, params.from_dict({}))
    assert table.to_dict("list") == {
        "old_from": [57, 58, 60],
        "oof_f1": [0.63, 0.61, 0.58],
        "source": ["old-57", "workspace", "old-60"],
    }
    # Against other params (12 epochs), only the run with 12 epochs is comparable.
    longer = stage.age_tradeoff_from_experiments(shown, params.from_dict({"train": {"epochs": 12}}))
    assert longer["source"].tolist() == ["longer"]


@pytest.mark.xdist_group("predicted")
def test_the_report_stage_renders_the_ensembles_out_of_fold_decisions(tmp_path, tmp_path_factory):
    import predicted_fixture as pfx
    from maskcls import artifacts
    from maskcls.paths import Paths
    from maskcls.stages import ensemble
    from maskcls.stages import report as stage

    root = pfx.copy(tmp_path_factory, tmp_path / "repo")
    p = pfx.make_params({"person": "pool+assign", "tune": "bias"})
    ensemble.run(p, root)
    (root / "age_tradeoff.csv").write_text("old_from,oof_f1,source\n")  # the committed file: no runs yet
    index = stage.run(p, root)
    assert index == root / "reports" / "index.html"
    text = index.read_text()
    oof = artifacts.read_ensemble(Paths(root).ensemble_dir, "oof")
    truth = artifacts.read_truth(Paths(root).labels_dir).loc[oof["rows"], "class"].to_numpy()
    # The decisions are the ensemble's (cross-fitted, pooled), not the argmax of its probabilities.
    assert (oof["pred"] != oof["class18"].argmax(1)).any()
    assert f"{len(truth)} photos, {int((truth != oof['pred']).sum())} out-of-fold mistakes" in text
    page = Page(text)
    assert page.images and all((index.parent / img["src"]).is_file() for img in page.images)
    assert len(page.per_class_rows) == 18 and "holdout F1" in text  # the sample has eval answers
    index_table = artifacts.read_index(Paths(root).index_dir, "train", needs=("folder", "file"))
    worst = report.worst_mistakes(truth, oof["class18"], oof["pred"])[0]
    row = oof["rows"][worst.rows[0]]
    assert f"{index_table['folder'][row]}/{index_table['file'][row].rsplit('/', 1)[1]}" in text
    assert "maskcls report --collect-age" in text and report.AGE_CHART not in text
    # With runs at several thresholds, the chart and its table.
    (root / "age_tradeoff.csv").write_text("old_from,oof_f1,source\n57,0.6,a\n58,0.62,b\n58,0.64,c\n60,0.59,d\n")
    text = stage.run(p, root).read_text()
    assert (root / "reports" / report.AGE_CHART).is_file()
    assert '<td class="num">58</td><td class="num">0.6300</td>' in text  # two runs at 58, averaged
    if shutil.which("chromium") or os.environ.get("CI"):
        page = Page(dump_dom(chromium(), index, tmp_path))
        assert [img["src"] for img in page.images if img.get("data-loaded") != "1"] == []


@pytest.mark.slow
@pytest.mark.xdist_group("e2e")
def test_collect_age_reads_dvc_exp_show_of_a_repository(tmp_path):
    import json

    from repo_copy import copy_repo, sh

    root = copy_repo(tmp_path / "repo")
    out = sh(root, "maskcls", "report", "--collect-age")
    assert "next: dvc repro report" in out
    committed = json.loads((root / "metrics" / "eval.json").read_text())["oof_f1"]
    lines = (root / "age_tradeoff.csv").read_text().splitlines()
    # The workspace and HEAD: one run (the committed metrics), at the copy's threshold.
    assert lines[0] == "old_from,oof_f1,source" and len(lines) == 2
    old_from, f1, _ = lines[1].split(",")
    assert (int(old_from), float(f1)) == (58, committed)
