"""An offline HTML error report of out-of-fold predictions: the most confident mistakes, per class pair.

`write_report` takes plain arrays (truth, probabilities, the photos in the same row order, captions) and writes a
self-contained folder: `index.html` and the PNG files it links to by relative path, no external script, style
sheet or font. The same inputs give the same bytes: no timestamp anywhere, PNGs written by PIL without metadata,
text drawn with PIL's built-in bitmap font (no system font), every tie broken by class id or row.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from sklearn.metrics import f1_score

from maskcls import io, layout
from maskcls.metrics import accuracy, macro_f1

INDEX = "index.html"
AGE_CHART = "age_tradeoff.png"
TOP_PAIRS = 12  # confusions shown, most frequent first
PER_PAIR = 16  # photos per contact sheet, most confident mistake first
SHEET_COLUMNS = 8
TILE_WIDTH = 128  # thumbnail width in pixels; the height keeps the photos' aspect ratio
CAPTION_LINES = 3  # the id on up to two lines, then p(wrong)
LINE_HEIGHT = 12
PAD = 4


@dataclass(frozen=True)
class Confusion:
    """One (true -> predicted) class pair: how often it happens and its worst photos, most confident first."""

    true: int
    pred: int
    count: int
    rows: np.ndarray  # indices into the report's arrays, at most `per_pair`
    p_wrong: np.ndarray  # probability given to `pred` for each of `rows`, non-increasing


def predicted_classes(probs: np.ndarray) -> np.ndarray:
    return np.asarray(probs).argmax(1)


def worst_mistakes(
    truth: np.ndarray,
    probs: np.ndarray,
    pred: np.ndarray | None = None,
    top_pairs: int = TOP_PAIRS,
    per_pair: int = PER_PAIR,
) -> list[Confusion]:
    """The `top_pairs` most frequent (true -> predicted) mistakes, by count, ties by true then predicted class.

    Within a pair the photos are sorted by the probability of the wrong class, highest first (ties: lower row
    first); `pred` defaults to the argmax of `probs` (pass the ensemble's decision when it is a vote).
    """
    truth = np.asarray(truth)
    probs = np.asarray(probs)
    pred = predicted_classes(probs) if pred is None else np.asarray(pred)
    wrong = np.flatnonzero(truth != pred)
    if not len(wrong):
        return []
    pairs, counts = np.unique(np.stack([truth[wrong], pred[wrong]], 1), axis=0, return_counts=True)
    # np.unique sorts the pairs by (true, pred); a stable sort by count keeps that order among equal counts.
    order = np.argsort(-counts, kind="stable")[:top_pairs]
    out = []
    for k in order:
        t, p = (int(c) for c in pairs[k])
        rows = wrong[(truth[wrong] == t) & (pred[wrong] == p)]  # increasing
        p_wrong = probs[rows, p]
        worst = np.lexsort((rows, -p_wrong))[:per_pair]
        out.append(Confusion(t, p, int(counts[k]), rows[worst], p_wrong[worst]))
    return out


def confusion_matrix(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """18 x 18 counts, rows = actual class, columns = predicted class, both in numeric class order."""
    matrix = np.zeros((layout.NUM_CLASSES, layout.NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth), np.asarray(pred)), 1)
    return matrix


def sheet_name(confusion: Confusion) -> str:
    return f"mistakes_{confusion.true:02d}_to_{confusion.pred:02d}.png"


# --- drawing ---------------------------------------------------------------------------------------------------


def _font() -> ImageFont.ImageFont:
    # The bitmap font shipped inside Pillow: the same glyphs on every machine, no FreeType hinting differences.
    return ImageFont.load_default_imagefont()


def _fit(text: str, width: int, font: ImageFont.ImageFont) -> list[str]:
    """`text` on at most two lines of `width` pixels; a middle that does not fit becomes `..`."""
    if font.getlength(text) <= width:
        return [text]
    head = ""
    for ch in text:
        if font.getlength(head + ch) > width:
            break
        head += ch
    rest = text[len(head) :]
    if font.getlength(rest) <= width:
        return [head, rest]
    tail = ""
    for ch in reversed(rest):
        if font.getlength(".." + ch + tail) > width:
            break
        tail = ch + tail
    return [head, ".." + tail]


def contact_sheet(images: np.ndarray, confusion: Confusion, ids: Sequence[str]) -> Image.Image:
    """The pair's photos in a grid, each captioned with its id and p(wrong)."""
    font = _font()
    height, width = images.shape[1:3]
    tile_h = max(1, round(height * TILE_WIDTH / width))
    cell_w, cell_h = TILE_WIDTH + 2 * PAD, tile_h + CAPTION_LINES * LINE_HEIGHT + 2 * PAD
    n = len(confusion.rows)
    cols = min(SHEET_COLUMNS, n)
    rows = -(-n // cols)
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    photos = np.asarray(images[np.sort(confusion.rows)])  # one read of a memory-mapped array, in row order
    where = {int(r): i for i, r in enumerate(np.sort(confusion.rows))}
    for i, (row, p) in enumerate(zip(confusion.rows, confusion.p_wrong, strict=True)):
        x, y = (i % cols) * cell_w + PAD, (i // cols) * cell_h + PAD
        thumb = Image.fromarray(photos[where[int(row)]], "RGB").resize((TILE_WIDTH, tile_h), Image.Resampling.BILINEAR)
        sheet.paste(thumb, (x, y))
        # The bitmap font has Latin-1 glyphs only: other characters show as `?` here (the HTML keeps them).
        caption = str(ids[int(row)]).encode("latin-1", "replace").decode("latin-1")
        lines = _fit(caption, TILE_WIDTH, font) + [f"p(wrong)={p:.3f}"]
        for j, line in enumerate(lines):
            draw.text((x, y + tile_h + 1 + j * LINE_HEIGHT), line, fill="black", font=font)
    return sheet


def age_chart(points: list[tuple[int, float]]) -> Image.Image:
    """Out-of-fold F1 against relabel_age.old_from, as a line chart; the best threshold in red."""
    font = _font()
    w, h = 480, 260
    left, right, top, bottom = 56, 16, 24, 36
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    pad = max((y_hi - y_lo) * 0.1, 0.005)
    y_lo, y_hi = y_lo - pad, y_hi + pad

    def at(x: float, y: float) -> tuple[int, int]:
        fx = (x - x_lo) / (x_hi - x_lo) if x_hi > x_lo else 0.5
        return (
            round(left + fx * (w - left - right)),
            round(h - bottom - (y - y_lo) / (y_hi - y_lo) * (h - top - bottom)),
        )

    draw.text((left, 6), "out-of-fold macro F1 vs relabel_age.old_from", fill="black", font=font)
    draw.line([(left, top), (left, h - bottom), (w - right, h - bottom)], fill="black")
    for k in range(5):
        yv = y_lo + (y_hi - y_lo) * k / 4
        _, py = at(x_lo, yv)
        draw.line([(left - 3, py), (left, py)], fill="black")
        draw.line([(left + 1, py), (w - right, py)], fill=(230, 230, 230))
        label = f"{yv:.3f}"
        draw.text((left - 5 - font.getlength(label), py - 5), label, fill="black", font=font)
    for xv in sorted(set(xs)):
        px, _ = at(xv, y_lo)
        draw.line([(px, h - bottom), (px, h - bottom + 3)], fill="black")
        draw.text((px - font.getlength(str(xv)) / 2, h - bottom + 6), str(xv), fill="black", font=font)
    draw.text((w - right - font.getlength("old_from"), h - 12), "old_from", fill="black", font=font)
    draw.line([at(x, y) for x, y in points], fill=(33, 90, 180), width=2)
    best = max(range(len(points)), key=lambda i: (ys[i], -i))
    for i, (x, y) in enumerate(points):
        px, py = at(x, y)
        colour = (200, 30, 30) if i == best else (33, 90, 180)
        draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
    return img


def _save_png(image: Image.Image, path: Path) -> None:
    # No pnginfo, no time chunk: PIL writes the same bytes for the same pixels.
    image.save(path, format="PNG", optimize=False)


# --- HTML ------------------------------------------------------------------------------------------------------

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 2px 5px; font-size: 12px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.cm th.col { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; }
table.cm td { text-align: center; min-width: 2.2em; }
table.cm td.diag { outline: 2px solid #555; outline-offset: -2px; }
figure { margin: 0 0 2em; }
figcaption { font-weight: bold; margin-bottom: 0.3em; }
img { max-width: 100%; height: auto; }
nav a { margin-right: 1em; }
"""

# Each <img> records whether it loaded: data-loaded 1 or 0 and its natural width, for a headless check.
MARK_SCRIPT = """
function mark(img, ok) { img.dataset.loaded = ok ? "1" : "0"; img.dataset.naturalWidth = String(img.naturalWidth); }
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _img(src: str, alt: str, size: tuple[int, int]) -> str:
    return (
        f'<img src="{_e(src)}" alt="{_e(alt)}" width="{size[0]}" height="{size[1]}" '
        'onload="mark(this, true)" onerror="mark(this, false)">'
    )


def _shade(value: float) -> str:
    """Background for a row-normalised value in [0, 1]: white to dark blue; light text on dark cells."""
    lo, hi = np.array([255, 255, 255]), np.array([20, 70, 160])
    r, g, b = (int(c) for c in np.rint(lo + (hi - lo) * value))
    text = "#fff" if value > 0.5 else "#000"
    return f"background:#{r:02x}{g:02x}{b:02x};color:{text}"


def confusion_table(matrix: np.ndarray) -> str:
    names = [layout.class_name(c) for c in range(layout.NUM_CLASSES)]
    head = "".join(f'<th class="col" scope="col">{_e(n)}</th>' for n in names)
    lines = [
        '<table class="cm" id="confusion-matrix">',
        f'<thead><tr><th scope="col">actual \\ predicted</th>{head}<th scope="col">total</th></tr></thead>',
        "<tbody>",
    ]
    for t in range(layout.NUM_CLASSES):
        total = int(matrix[t].sum())
        cells = []
        for p in range(layout.NUM_CLASSES):
            count = int(matrix[t, p])
            share = count / total if total else 0.0
            diag = ' class="diag"' if t == p else ""
            title = f"{names[t]} -> {names[p]}: {count} of {total} ({share:.1%})"
            cells.append(f'<td{diag} style="{_shade(share)}" title="{_e(title)}">{count or ""}</td>')
        lines.append(f'<tr><th scope="row">{_e(names[t])}</th>{"".join(cells)}<td class="num">{total}</td></tr>')
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def per_class_table(truth: np.ndarray, pred: np.ndarray, holdout_f1: Sequence[float] | None) -> str:
    labels = list(range(layout.NUM_CLASSES))
    f1 = f1_score(truth, pred, labels=labels, average=None, zero_division=0)
    support = np.bincount(truth, minlength=layout.NUM_CLASSES)
    predicted = np.bincount(pred, minlength=layout.NUM_CLASSES)
    extra = '<th scope="col">holdout F1</th>' if holdout_f1 is not None else ""
    lines = [
        '<table id="per-class-f1">',
        f'<thead><tr><th scope="col">class</th><th scope="col">support</th><th scope="col">predicted</th>'
        f'<th scope="col">out-of-fold F1</th>{extra}</tr></thead>',
        "<tbody>",
    ]
    for c in labels:
        cells = f'<td class="num">{support[c]}</td><td class="num">{predicted[c]}</td><td class="num">{f1[c]:.3f}</td>'
        if holdout_f1 is not None:
            cells += f'<td class="num">{float(holdout_f1[c]):.3f}</td>'
        lines.append(f'<tr><th scope="row">{_e(layout.class_name(c))}</th>{cells}</tr>')
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def mistakes_section(confusions: list[Confusion], sizes: dict[str, tuple[int, int]], probs, ids) -> str:
    if not confusions:
        return "<p>No out-of-fold mistakes.</p>"
    parts = []
    for k, c in enumerate(confusions, 1):
        t, p = layout.class_name(c.true), layout.class_name(c.pred)
        name = sheet_name(c)
        alt = f"{len(c.rows)} photos of {t} predicted as {p}"
        rows = "".join(
            f'<tr><td>{_e(ids[int(r)])}</td><td class="num">{pw:.3f}</td>'
            f'<td class="num">{float(probs[int(r), c.true]):.3f}</td></tr>'
            for r, pw in zip(c.rows, c.p_wrong, strict=True)
        )
        parts.append(
            f'<figure id="pair-{c.true:02d}-{c.pred:02d}">\n'
            f"<figcaption>{k}. actual {_e(t)} &rarr; predicted {_e(p)}: {c.count} photo(s), "
            f"the {len(c.rows)} most confident shown</figcaption>\n"
            f"{_img(name, alt, sizes[name])}\n"
            f"<details><summary>ids</summary><table><thead><tr><th>id</th><th>p(wrong)</th><th>p(true)</th></tr>"
            f"</thead><tbody>{rows}</tbody></table></details>\n"
            "</figure>"
        )
    return "\n".join(parts)


def age_section(points: list[tuple[int, float]], size: tuple[int, int] | None) -> str:
    if size is None:
        have = f" Only one point so far: old_from={points[0][0]}, out-of-fold F1 {points[0][1]:.4f}." if points else ""
        return (
            "<p>The age-threshold trade-off needs out-of-fold F1 from runs at several thresholds, e.g. "
            "<code>dvc exp run -S relabel_age.old_from=57</code>, <code>dvc exp run -S relabel_age.old_from=58</code>"
            " and <code>dvc exp run -S relabel_age.old_from=60</code>, then <code>maskcls report --collect-age</code>"
            " (it keeps the runs that differ from params.yaml in the threshold only) and "
            f"<code>dvc repro report</code>.{have}</p>"
        )
    best = max(points, key=lambda q: q[1])
    rows = "".join(f'<tr><td class="num">{x}</td><td class="num">{y:.4f}</td></tr>' for x, y in points)
    return (
        f"{_img(AGE_CHART, 'out-of-fold macro F1 against relabel_age.old_from', size)}\n"
        f'<table id="age-tradeoff-table"><thead><tr><th>relabel_age.old_from</th><th>out-of-fold F1</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>\n"
        f"<p>Best: old_from={best[0]} (F1 {best[1]:.4f}). Truth keeps the competition's bands (old from "
        f"{layout.OLD_FROM}); only the training targets move.</p>"
    )


def _check(truth, probs, images, ids, pred) -> None:
    n = len(truth)
    if truth.ndim != 1 or (n and (truth.min() < 0 or truth.max() >= layout.NUM_CLASSES)):
        raise ValueError(f"truth must be (N,) classes 0..{layout.NUM_CLASSES - 1}")
    if probs.shape != (n, layout.NUM_CLASSES):
        raise ValueError(f"probs is {probs.shape}, expected ({n}, {layout.NUM_CLASSES})")
    if images.ndim != 4 or images.shape[0] != n or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images is {images.dtype} {images.shape}, expected uint8 ({n}, H, W, 3)")
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} rows")
    if pred is not None and pred.shape != (n,):
        raise ValueError(f"pred is {pred.shape}, expected ({n},)")


def write_report(
    out_dir: Path,
    truth: np.ndarray,
    probs: np.ndarray,
    images: np.ndarray,
    ids: Sequence[str],
    age_tradeoff: Sequence[tuple[int, float]] | None = None,
    per_class_holdout_f1: Sequence[float] | None = None,
    *,
    pred: np.ndarray | None = None,
    top_pairs: int = TOP_PAIRS,
    per_pair: int = PER_PAIR,
) -> Path:
    """Write the error report folder `out_dir` (index.html and its PNGs) in one rename; return index.html's path.

    truth (N,) classes; probs (N, 18) out-of-fold probabilities; images (N, H, W, 3) uint8 in the same row order
    (a memory-mapped cache indexed by row is read only where a photo is shown); ids (N,) captions;
    age_tradeoff [(relabel_age.old_from, out-of-fold F1), ...]; per_class_holdout_f1 18 values in class order;
    pred the decision per row when it is not the argmax of probs.
    """
    out_dir = Path(out_dir)
    truth = np.asarray(truth, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    pred = None if pred is None else np.asarray(pred, dtype=np.int64)
    _check(truth, probs, images, ids, pred)
    holdout = None if per_class_holdout_f1 is None else np.asarray(per_class_holdout_f1, dtype=np.float64)
    if holdout is not None and holdout.shape != (layout.NUM_CLASSES,):
        raise ValueError(f"per_class_holdout_f1 is {holdout.shape}, expected ({layout.NUM_CLASSES},)")
    decided = predicted_classes(probs) if pred is None else pred
    confusions = worst_mistakes(truth, probs, decided, top_pairs, per_pair)
    points = sorted((int(x), float(y)) for x, y in (age_tradeoff or []))

    with io.atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        sizes: dict[str, tuple[int, int]] = {}
        for c in confusions:
            sheet = contact_sheet(images, c, ids)
            _save_png(sheet, tmp / sheet_name(c))
            sizes[sheet_name(c)] = sheet.size
        chart_size = None
        if len(points) >= 2:
            chart = age_chart(points)
            _save_png(chart, tmp / AGE_CHART)
            chart_size = chart.size
        page = render_page(truth, decided, probs, ids, confusions, sizes, points, chart_size, holdout)
        (tmp / INDEX).write_text(page, encoding="utf-8", newline="\n")
    return out_dir / INDEX


def render_page(truth, pred, probs, ids, confusions, sizes, points, chart_size, holdout_f1) -> str:
    n = len(truth)
    mistakes = int((truth != pred).sum())
    summary = (
        f"{n} photos, {mistakes} out-of-fold mistakes; macro F1 {macro_f1(truth, pred):.4f}, "
        f"accuracy {accuracy(truth, pred):.4f}."
        if n
        else "No photos."
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Out-of-fold error report</title>
<style>{STYLE}</style>
<script>{MARK_SCRIPT}</script>
</head>
<body>
<h1>Out-of-fold error report</h1>
<p>{_e(summary)}</p>
<nav><a href="#mistakes">mistakes</a><a href="#confusion">confusion matrix</a><a href="#per-class">per-class F1</a>\
<a href="#age-threshold">age threshold</a></nav>
<section id="mistakes">
<h2>Most frequent confusions, most confident mistakes first</h2>
{mistakes_section(confusions, sizes, probs, ids)}
</section>
<section id="confusion">
<h2>Confusion matrix (rows: actual, columns: predicted; shade: share of the row)</h2>
{confusion_table(confusion_matrix(truth, pred))}
</section>
<section id="per-class">
<h2>Per-class F1</h2>
{per_class_table(truth, pred, holdout_f1)}
</section>
<section id="age-threshold">
<h2>Age threshold trade-off</h2>
{age_section(points, chart_size)}
</section>
</body>
</html>
"""
