"""Generate a look-alike sample of the competition data, in its exact folder layout.

The real photos cannot be redistributed, so the pipeline, its tests and its benchmarks run on drawn people.
The sample copies what shapes the code and the scores:

- the layout and its quirks: string ids with zero padding and suffixes, one id on two folders, mixed
  extensions (also inside one folder), macOS `._*` junk, a 40-hex eval naming with hidden identities;
- the class balance: ~61% female, ages bunched at ~20 and in the fifties, every "old" person exactly 60,
  so the age threshold trick (58) has something to grow;
- the published label noise, on the same person ids, so the override file can be measured;
- a visual signal per head: the mask is easy, gender is mostly clear, age is the hardest because its cues
  (grey hair, wrinkles, sag) grow smoothly with age and vary from person to person.

Every random draw comes from a generator seeded by (seed, split, person), so the same seed gives the same
bytes whether people are drawn in one process or in a pool.

Besides `train/` and `eval/` the sample holds the truth the real data lacks: `eval_labels.csv` (the answers,
beside `eval/` so no stage can read it as input by accident) and `train_truth.csv` (train labels before the
label noise).
"""

from __future__ import annotations

import colorsys
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from maskcls import layout
from maskcls.errors import ParamsError
from maskcls.io import atomic_path

# Train labels before the label noise; like eval_labels.csv it sits beside train/, never inside it.
TRAIN_TRUTH = "train_truth.csv"

H, W = layout.IMAGE_SIZE
TRAIN, EVAL = 0, 1  # split codes in the per-person seeds

# --- the people ---------------------------------------------------------------------------------------------

FEMALE_SHARE = 1658 / 2700
# Percent of people per age, shaped on the real train set: <30 47.4%, 30..59 45.5%, exactly 60 7.1%;
# 59, 58 and 57 are common, so lowering the old threshold to 59 / 58 grows the old group by ~3% / ~9%.
AGE_PERCENT = {
    18: 2.0, 19: 7.5, 20: 8.5, 21: 6.0, 22: 4.8, 23: 4.0, 24: 3.4, 25: 2.8, 26: 2.4, 27: 2.0, 28: 1.9, 29: 2.1,
    **dict.fromkeys(range(30, 40), 0.35),
    **dict.fromkeys(range(40, 50), 0.75),
    50: 2.6, 51: 2.8, 52: 3.0, 53: 3.1, 54: 3.2, 55: 3.4, 56: 3.5, 57: 3.9, 58: 5.9, 59: 3.1,
    60: 7.1,
}  # fmt: skip

# The published label noise, on the same ids (needs people >= 30 to fit them all in).
MASK_SWAPPED = ("000020", "004418", "005227")  # incorrect_mask and normal photos swapped
CSV_FEMALE_TRULY_MALE = ("006359", "006360", "006361", "006362", "006363", "006364", "001720")
CSV_MALE_TRULY_FEMALE = ("001498-1", "004432", "005223", "001200")
CSV_OLDER_TRULY_YOUNG = ("001009", "001064", "001637", "001666", "001852")  # truly under 30
CSV_YOUNGER_TRULY_OLD = ("004348",)  # truly 60
NOISY_IDS = MASK_SWAPPED + CSV_FEMALE_TRULY_MALE + CSV_MALE_TRULY_FEMALE + CSV_OLDER_TRULY_YOUNG + CSV_YOUNGER_TRULY_OLD
NOISE_FROM = 30
DUPLICATE_ID, DUPLICATE_AGES = "003397", (20, 19)  # one id on two folders, as in the real csv
SECOND_SUFFIX_ID = "001774-2"
SUFFIX_SHARE = 40 / 2700  # ids like 001498-1
MAX_ID = 6999
MAX_PEOPLE = 6000  # train ids are unique numbers up to MAX_ID

# Folder kinds by their extensions: the real set has 2.7% .png and 1.9% .jpeg images, 7 of 2700 folders mixed.
EXT_KINDS = {"jpg": 0.951, "png": 0.027, "jpeg": 0.019, "mixed": 0.003}
JUNK_SHARE = 0.1  # folders with macOS `._*` files beside their photos


def sample_demographics(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Genders ("male"/"female") and ages (years) of n people, in random order.

    Systematic sampling: every gender and age gets its expected count within one, so even a few hundred
    people show the real imbalance instead of a noisy draw of it.
    """
    gender = np.asarray(layout.GENDERS)[_systematic([1 - FEMALE_SHARE, FEMALE_SHARE], n, rng)]
    ages = np.asarray(list(AGE_PERCENT), dtype=np.int64)
    age = ages[_systematic(list(AGE_PERCENT.values()), n, rng)]
    return gender, age


def _systematic(weights, n: int, rng: np.random.Generator) -> np.ndarray:
    cdf = np.cumsum(weights, dtype=np.float64)
    cdf /= cdf[-1]
    points = (np.arange(n) + rng.random()) / n
    picks = np.minimum(np.searchsorted(cdf, points, side="right"), len(cdf) - 1)
    return rng.permutation(picks)


def draw_train_people(n: int, seed: int) -> pd.DataFrame:
    """One row per train folder: the csv labels, the truth behind them, and how the folder's files look.

    Columns: id, gender, age (truth), csv_gender, csv_age (what train.csv says), mask_swap, path (folder),
    exts (extension per stem, in `layout.STEMS` order), junk (stems with a `._*` file beside them).
    """
    rng = np.random.default_rng([seed, TRAIN, 1])
    ids = _train_ids(n, rng)
    gender, age = sample_demographics(n, rng)
    _pin_truth(ids, gender, age, rng)
    csv_gender, csv_age = gender.copy(), age.copy()
    for row, person in enumerate(ids):
        if person in CSV_FEMALE_TRULY_MALE + CSV_MALE_TRULY_FEMALE:
            csv_gender[row] = "female" if gender[row] == "male" else "male"
        elif person in CSV_OLDER_TRULY_YOUNG:
            csv_age[row] = rng.integers(40, 56)
        elif person in CSV_YOUNGER_TRULY_OLD:
            csv_age[row] = rng.integers(45, 58)
    frame = pd.DataFrame({"id": ids, "gender": gender, "age": age, "csv_gender": csv_gender, "csv_age": csv_age})
    frame["mask_swap"] = frame["id"].isin(MASK_SWAPPED)
    frame["path"] = [layout.person_folder(i, g, int(a)) for i, g, a in zip(ids, csv_gender, csv_age, strict=True)]
    frame["exts"] = _extensions(n, rng)
    frame["junk"] = _junk(n, rng)
    return frame


def _train_ids(n: int, rng: np.random.Generator) -> list[str]:
    """Sorted csv ids: the quirky and noisy ones the sample must show, filled up with random unique ids."""
    forced: list[str] = []
    if n >= 2:
        forced += [DUPLICATE_ID, DUPLICATE_ID]
    if n >= 3:
        forced.append(SECOND_SUFFIX_ID)
    if n >= NOISE_FROM:
        forced += NOISY_IDS
    forced = forced[:n]
    taken = {int(i.split("-")[0]) for i in forced}
    free = np.setdiff1d(np.arange(1, MAX_ID + 1), sorted(taken))
    bases = rng.choice(free, size=n - len(forced), replace=False)
    suffixed = rng.random(len(bases)) < SUFFIX_SHARE
    if n >= 4 and len(bases) and not suffixed.any() and not any(i.endswith("-1") for i in forced):
        suffixed[rng.integers(len(bases))] = True
    drawn = [f"{b:06d}-1" if s else f"{b:06d}" for b, s in zip(bases, suffixed, strict=True)]
    return sorted(forced + drawn)


def _pin_truth(ids: list[str], gender: np.ndarray, age: np.ndarray, rng: np.random.Generator) -> None:
    """Give the noisy and duplicated ids the true labels their story needs (in place).

    A pinned row swaps values with a free row rather than overwriting, so the sample keeps its balance.
    """
    young, old = range(18, layout.YOUNG_BELOW), (layout.OLD_FROM,)
    gender_rules = {i: ("male",) for i in CSV_FEMALE_TRULY_MALE} | {i: ("female",) for i in CSV_MALE_TRULY_FEMALE}
    age_rules = {i: young for i in CSV_OLDER_TRULY_YOUNG} | {i: old for i in CSV_YOUNGER_TRULY_OLD}
    gender_rows = {row: gender_rules[i] for row, i in enumerate(ids) if i in gender_rules}
    age_rows = {row: age_rules[i] for row, i in enumerate(ids) if i in age_rules}
    duplicates = [row for row, i in enumerate(ids) if i == DUPLICATE_ID]
    age_rows |= {row: (a,) for row, a in zip(duplicates, DUPLICATE_AGES, strict=False)}
    for values, rules in ((gender, gender_rows), (age, age_rows)):
        free = rng.permutation(np.setdiff1d(np.arange(len(ids)), list(rules)))
        for row, allowed in rules.items():
            _pin(values, row, allowed, free)


def _pin(values: np.ndarray, row: int, allowed, free: np.ndarray) -> None:
    if values[row] in allowed:
        return
    for other in free:
        if values[other] in allowed:
            values[row], values[other] = values[other], values[row]
            return
    values[row] = allowed[len(allowed) // 2]  # no free row has it: the sample is too small to keep its balance


def _extensions(n: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    """Extension per stem for each folder: mostly .jpg, whole .png / .jpeg folders, and some mixed ones."""
    kinds = rng.choice(list(EXT_KINDS), size=n, p=list(EXT_KINDS.values()))
    # Every quirk appears at least once, even in a tiny sample; mixed first, the rarest and most telling.
    needed = ["mixed", "png", "jpeg"] if n >= 6 else ["mixed"]
    for kind in needed:
        plain = np.flatnonzero(kinds == "jpg")
        if kind not in kinds and len(plain):
            kinds[rng.choice(plain)] = kind
    exts = []
    for kind in kinds:
        if kind == "mixed":
            stems = [".jpg"] * len(layout.STEMS)
            for k in rng.choice(len(stems), size=rng.integers(1, 3), replace=False):
                stems[k] = str(rng.choice([".png", ".jpeg"]))
            exts.append(tuple(stems))
        else:
            exts.append((f".{kind}",) * len(layout.STEMS))
    return exts


def _junk(n: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    """Stems that get a macOS `._<file>` beside them, per folder; at least one folder has some."""
    chosen = rng.random(n) < JUNK_SHARE
    if not chosen.any():
        chosen[rng.integers(n)] = True
    junk = []
    for pick in chosen:
        stems = tuple(s for s in layout.STEMS if rng.random() < 0.7) or layout.STEMS[:1]
        junk.append(stems if pick else ())
    return junk


def draw_eval_people(n: int, seed: int) -> pd.DataFrame:
    """One row per eval person: true gender and age. Their appearance seeds differ from every train person's."""
    gender, age = sample_demographics(n, np.random.default_rng([seed, EVAL, 1]))
    return pd.DataFrame({"gender": gender, "age": age})


def eval_images(people: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The eval photo table in info.csv order: ImageID, person, stem and true labels (mask, gender, age, ans).

    Names are random 40-hex strings and rows are shuffled, so neither tells whose photo it is.
    """
    rng = np.random.default_rng([seed, EVAL, 2])
    n = len(people) * len(layout.STEMS)
    names = rng.bytes(20 * n).hex()
    rows = []
    for k, (person, stem) in enumerate((p, s) for p in range(len(people)) for s in layout.STEMS):
        gender, age = people.loc[person, "gender"], int(people.loc[person, "age"])
        mask, gender_label = layout.STEM_TO_MASK[stem], layout.GENDER_TO_LABEL[gender]
        rows.append({
            "ImageID": names[40 * k : 40 * (k + 1)] + ".jpg",
            "person": person,
            "stem": stem,
            "ans": int(layout.encode(mask, gender_label, layout.age_to_label(age))),
            "mask": mask,
            "gender": gender_label,
            "age": age,
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=["ImageID", "person", "stem", "ans", "mask", "gender", "age"])
    if frame["ImageID"].duplicated().any():  # 160 random bits: never in practice, but a clash would lose a photo
        raise RuntimeError("eval ImageID clash; pick another seed")
    return frame.iloc[rng.permutation(n)].reset_index(drop=True)


# --- how a person looks --------------------------------------------------------------------------------------

MASK_STYLES = ("surgical", "kf94", "cloth", "stripes", "dots", "two_tone", "skin")
WALLS = ((236, 236, 232), (218, 206, 190), (192, 196, 202), (202, 216, 226), (226, 221, 200), (150, 150, 155))


@dataclass(frozen=True)
class MaskStyle:
    kind: str
    color: tuple[float, float, float]
    second: tuple[float, float, float]  # stripes, dots, the other half
    loop: tuple[float, float, float]  # ear loops
    spacing: int


@dataclass(frozen=True)
class Look:
    """Everything that stays the same over one person's seven photos (canonical frame, before the camera)."""

    cx: float
    cy: float
    fw: float  # face half-width
    fh: float  # face half-height
    jaw: float  # jaw width over face width: men and older people have wider jaws
    skin: np.ndarray
    hair: np.ndarray  # after greying
    brow: np.ndarray
    lips: np.ndarray
    hair_style: str  # short, bob, long
    hairline: str  # bangs, side, arch, receding
    hair_volume: float
    part_side: int
    brow_thickness: int
    eye_open: float
    beard: float  # stubble shade, 0 = none
    glasses: tuple[float, float, float] | None
    wrinkle: float  # 0..1, grows with apparent age
    grey: float  # 0..1 share of grey hair
    sag: float  # 0..1 lower face drop
    spots: int
    clothes: tuple[float, float, float]
    clothes_stripes: tuple[float, float, float] | None
    neckline: str
    shoulders: float
    wall: np.ndarray
    wall_tilt: tuple[float, float]
    wall_items: tuple[tuple[int, int, int, int, tuple[float, float, float], int], ...]
    masks: tuple[MaskStyle, ...]  # mask1..mask5
    incorrect_mask: int  # which of the five is worn wrongly
    incorrect_place: str  # nose_out (below the nose) or chin
    scale: float  # how close to the camera the person stood
    offset: tuple[float, float]
    light: tuple[float, float]  # side and top light strength
    noise: int
    quality: int  # JPEG quality of the phone that took the photos


def _lerp(a, b, t) -> np.ndarray:
    return np.asarray(a, np.float64) * (1 - t) + np.asarray(b, np.float64) * t


def _rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    return tuple(255.0 * c for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def draw_look(rng: np.random.Generator, gender: str, age: int) -> Look:
    """A person's appearance. Gender and age shape it only through noisy, overlapping cues."""
    # One masculinity score drives every gender cue, so the cues agree but both genders overlap at the margin.
    m = rng.normal(0.8 if gender == "male" else -0.8, 0.45)
    # People look older or younger than they are: 58 and 60 are nearly the same picture.
    apparent = age + rng.normal(0, 4.0)
    wrinkle = float(np.clip((apparent - 27) / 36, 0, 1)) ** 1.2
    grey = float(np.clip((apparent - 36) / 30 + rng.normal(0, 0.12), 0, 1))
    sag = float(np.clip((apparent - 32) / 32, 0, 1))

    fw = 64 + 3.5 * m + rng.normal(0, 2.5)
    fh = fw * rng.uniform(1.22, 1.36) + 4 * sag
    long_score = -m + rng.normal(0, 0.7)
    hair_style = "long" if long_score > 0.6 else "bob" if long_score > 0.0 else "short"
    receding = gender == "male" and rng.random() < 0.6 * sag
    hairline = "receding" if receding else str(rng.choice(["bangs", "side", "arch"], p=[0.35, 0.4, 0.25]))

    skin = _lerp((238, 208, 184), (172, 126, 98), rng.uniform(0.05, 0.75)) + rng.normal(0, 4, 3)
    skin = _lerp(skin, skin.mean(), 0.15 * sag)  # older skin a little duller
    dyed = rng.random() < (0.3 if gender == "female" else 0.1) * (1 - grey)
    base_hair = (
        _lerp((22, 20, 20), (78, 54, 40), rng.random())
        if not dyed
        else _lerp((95, 60, 40), (140, 95, 60), rng.random())
    )
    grey_tone = rng.uniform(170, 215)
    hair = _lerp(base_hair, (grey_tone, grey_tone, grey_tone - 4), 0.9 * grey)
    redness = rng.normal(0.45, 0.12) if m < 0 else rng.normal(0.18, 0.08)
    beard = rng.uniform(0.06, 0.18) if m > 0.3 and rng.random() < 0.45 else 0.0

    return Look(
        cx=W / 2,
        cy=0.43 * H,
        fw=fw,
        fh=fh,
        jaw=0.84 + 0.04 * np.clip(m, -1.5, 1.5) + 0.08 * sag + rng.normal(0, 0.02),
        skin=np.clip(skin, 0, 255),
        hair=hair,
        brow=_lerp(base_hair, hair, 0.6) * 0.9,
        lips=_lerp(skin * 0.9, (185, 75, 85), float(np.clip(redness, 0.05, 0.8))),
        hair_style=hair_style,
        hairline=hairline,
        hair_volume=rng.uniform(0.02, 0.12) * (1.5 if hair_style != "short" else 1.0),
        part_side=int(rng.choice([-1, 1])),
        brow_thickness=int(np.clip(round(3 + 1.1 * m + rng.normal(0, 0.6)), 1, 6)),
        eye_open=float(np.clip(1 - 0.25 * sag + rng.normal(0, 0.08), 0.6, 1.2)),
        beard=beard,
        glasses=_glasses_color(rng),
        wrinkle=wrinkle,
        grey=grey,
        sag=sag,
        spots=int(max(0, round(wrinkle * 6 + rng.normal(0, 1)))),
        clothes=_rgb(rng.random(), rng.uniform(0.05, 0.8), rng.uniform(0.15, 0.95)),
        clothes_stripes=_rgb(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.3, 1)) if rng.random() < 0.2 else None,
        neckline=str(rng.choice(["round", "v", "collar"])),
        shoulders=150 + 12 * m + rng.normal(0, 8),
        wall=np.clip(np.asarray(WALLS[rng.integers(len(WALLS))], np.float64) + rng.normal(0, 10, 3), 0, 255),
        wall_tilt=(rng.uniform(-0.12, 0.12), rng.uniform(-0.1, 0.1)),
        wall_items=_wall_items(rng),
        masks=tuple(_mask_style(rng, kind, skin) for kind in rng.choice(MASK_STYLES, 5, replace=False)),
        incorrect_mask=int(rng.integers(5)),
        incorrect_place="nose_out" if rng.random() < 0.65 else "chin",
        scale=rng.uniform(0.92, 1.08),
        offset=(rng.normal(0, 6), rng.normal(0, 5)),
        light=(rng.uniform(-0.15, 0.15), rng.uniform(-0.08, 0.08)),
        noise=int(rng.integers(2, 5)),
        quality=int(rng.integers(80, 96)),
    )


def _glasses_color(rng: np.random.Generator) -> tuple[float, float, float] | None:
    """Frame colour for the 15% who wear glasses: dark plastic or gold metal."""
    if rng.random() >= 0.15:
        return None
    return _rgb(0, 0, rng.uniform(0.1, 0.3)) if rng.random() < 0.6 else (170.0, 150.0, 95.0)


def _wall_items(rng: np.random.Generator) -> tuple:
    """Door frames, posters and shelves behind the person: backgrounds differ between people, not photos."""
    items = []
    for _ in range(rng.integers(0, 3)):
        x0, y0 = int(rng.integers(-40, W)), int(rng.integers(-40, H // 2))
        x1, y1 = x0 + int(rng.integers(10, 200)), y0 + int(rng.integers(10, 400))
        thickness = -1 if rng.random() < 0.6 else int(rng.integers(2, 8))
        items.append((x0, y0, x1, y1, _rgb(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.3, 0.95)), thickness))
    return tuple(items)


def _mask_style(rng: np.random.Generator, kind: str, skin: np.ndarray) -> MaskStyle:
    """One mask: surgical ones are pale, KF94 white, black or grey, cloth any colour, and some close to skin."""
    if kind == "surgical":
        color = _rgb(rng.choice([0.55, 0.5, 0.0, 0.35]), rng.uniform(0, 0.35), rng.uniform(0.85, 1.0))
    elif kind == "kf94":
        color = _rgb(0, 0, rng.choice([0.95, 0.15, 0.6]) + rng.normal(0, 0.03))
    elif kind == "skin":
        color = _lerp(skin, (226, 206, 182), 0.5) + rng.normal(0, 6, 3)
    else:
        color = _rgb(rng.random(), rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.95))
    color = _c(color)
    second = _rgb(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.2, 1.0))
    loop = color if rng.random() < 0.5 else (235.0, 235.0, 235.0)
    return MaskStyle(kind, color, second, loop, int(rng.integers(7, 14)))


# --- drawing ------------------------------------------------------------------------------------------------

AA = cv2.LINE_AA


def _p(x: float, y: float) -> tuple[int, int]:
    return int(round(x)), int(round(y))


def _c(color) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.clip(color, 0, 255))


def render_base(look: Look, rng: np.random.Generator) -> np.ndarray:
    """The person without a mask, RGB uint8 (H, W, 3), in the canonical frame."""
    img = _wall(look)
    _body(img, look)
    if look.hair_style != "short":
        _back_hair(img, look, rng)
    _neck_and_face(img, look)
    _nose_and_mouth(img, look)
    _age_marks(img, look, rng)  # before the hair, which may hide the forehead lines
    _hair_top(img, look, rng)
    _eyes_and_brows(img, look)
    if look.glasses is not None:
        _glasses(img, look)
    return img


def _wall(look: Look) -> np.ndarray:
    img = _ramp(look.wall_tilt, look.wall)
    for x0, y0, x1, y1, color, thickness in look.wall_items:
        cv2.rectangle(img, (x0, y0), (x1, y1), color, thickness, AA)
    return img


def _ramp(tilt: tuple[float, float], value) -> np.ndarray:
    """`value` * (1 + tilt_x * x + tilt_y * y) over the image (x, y in -1..1), uint8 (H, W, 3).

    Computed on a small grid and upscaled: a linear ramp survives bilinear resizing, at a fraction of the cost.
    """
    ys = np.linspace(-1, 1, H // 8, dtype=np.float32)[:, None, None]
    xs = np.linspace(-1, 1, W // 8, dtype=np.float32)[None, :, None]
    small = (1 + tilt[0] * xs + tilt[1] * ys) * np.asarray(value, np.float32)
    return cv2.resize(np.clip(small, 0, 255).round().astype(np.uint8), (W, H), interpolation=cv2.INTER_LINEAR)


def _body(img: np.ndarray, look: Look) -> None:
    cx, sy, sw = look.cx, look.cy + 1.55 * look.fh, look.shoulders
    cv2.ellipse(img, _p(cx, sy + 90), _p(sw, 90), 0, 180, 360, look.clothes, -1, AA)
    cv2.rectangle(img, _p(cx - sw, sy + 90), _p(cx + sw, H), look.clothes, -1)
    if look.clothes_stripes is not None:
        for y in range(int(sy) + 12, H, 16):
            dy = min(0.0, (y - (sy + 90)) / 90)
            half = sw * np.sqrt(max(0.0, 1 - dy * dy))
            cv2.line(img, _p(cx - half + 3, y), _p(cx + half - 3, y), look.clothes_stripes, 4, AA)
    neck_skin = _c(look.skin * 0.88)
    nw = 0.55 * look.fw
    if look.neckline == "round":
        cv2.ellipse(img, _p(cx, sy), _p(nw, 0.6 * nw), 0, 0, 180, neck_skin, -1, AA)
    else:
        depth = 1.4 * nw
        cv2.fillPoly(img, [np.array([_p(cx - nw, sy), _p(cx + nw, sy), _p(cx, sy + depth)])], neck_skin, AA)
        if look.neckline == "collar":
            white = (232.0, 232.0, 228.0)
            for s in (-1, 1):
                tri = np.array(
                    [_p(cx + s * nw, sy - 4), _p(cx + s * 0.15 * nw, sy + depth), _p(cx + s * 1.9 * nw, sy + 18)]
                )
                cv2.fillPoly(img, [tri], white, AA)


def _back_hair(img: np.ndarray, look: Look, rng: np.random.Generator) -> None:
    """Hair behind the head and down the sides; long hair falls onto the shoulders."""
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    bottom = cy + (1.85 if look.hair_style == "long" else 0.8) * fh
    half = fw * (1.2 + look.hair_volume)
    region = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(region, _p(cx, cy - 0.15 * fh), _p(half, fh * 1.12), 0, 0, 360, 255, -1, AA)
    cv2.rectangle(region, _p(cx - half, cy - 0.15 * fh), _p(cx + half, bottom - 0.3 * fw), 255, -1)
    cv2.ellipse(region, _p(cx, bottom - 0.3 * fw), _p(half, 0.3 * fw), 0, 0, 180, 255, -1, AA)
    _paint_hair(img, region, look, rng)


def _hair_top(img: np.ndarray, look: Look, rng: np.random.Generator) -> None:
    """Hair over the top of the head, ending in the person's hairline on the forehead."""
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    a = fw * (1.08 + look.hair_volume)
    cap = cv2.ellipse2Poly(_p(cx, cy - 0.18 * fh), _p(a, fh * (0.98 + look.hair_volume)), 0, 180, 360, 6)
    xs = np.linspace(cx + a, cx - a, 31)
    u = (xs - cx) / fw
    if look.hairline == "bangs":
        line = cy - 0.4 * fh + 0.03 * fh * np.cos(9 * u)
    elif look.hairline == "side":
        line = cy - 0.55 * fh + 0.14 * fh * u * look.part_side
    elif look.hairline == "arch":
        line = cy - 0.5 * fh - 0.12 * fh * (1 - u * u)
    else:  # receding: high forehead, deeper at the temples
        line = cy - 0.75 * fh - 0.1 * fh * np.exp(-(((np.abs(u) - 0.5) / 0.2) ** 2))
    # Temples: the hairline comes down to eye height at the sides of the face.
    temple = np.clip((np.abs(u) - 0.8) / 0.3, 0, 1)
    line = line + (cy - 0.05 * fh - line) * temple
    poly = np.vstack([cap, np.stack([xs, line], axis=1).round().astype(np.int32)])
    region = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(region, [poly], 255, AA)
    _paint_hair(img, region, look, rng)


def _paint_hair(img: np.ndarray, region: np.ndarray, look: Look, rng: np.random.Generator) -> None:
    """Fill a hair region with strands: darker and lighter ones for texture, grey ones as the person greys."""
    x0, y0, w, h = cv2.boundingRect(region)
    if not w:
        return
    x1, y1 = x0 + w, y0 + h
    roi, alpha = img[y0:y1, x0:x1], region[y0:y1, x0:x1]
    layer = np.empty_like(roi)
    layer[:] = _c(look.hair)
    light = _lerp(look.hair, (205, 203, 198), 0.6 if look.grey > 0.05 else 0.15)
    greys = int(120 * look.grey)
    count = 50 + greys
    starts = rng.uniform((0, 0), (x1 - x0, y1 - y0), size=(count, 2))
    angles = rng.normal(np.pi / 2, 0.5, count)
    lengths = rng.uniform(6, 22, count)
    for k, ((sx, sy), angle, length) in enumerate(zip(starts, angles, lengths, strict=True)):
        end = (sx + length * np.cos(angle), sy + length * np.sin(angle))
        grey_strand = k < greys
        color = light if grey_strand else look.hair * rng.choice([0.7, 1.25])
        cv2.line(layer, _p(sx, sy), _p(*end), _c(color), 1, AA)
    _blend(roi, layer, alpha)


def _blend(roi: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> None:
    """roi = layer where alpha is 255, roi where 0, anti-aliased in between (in place)."""
    a = alpha[..., None].astype(np.uint16)
    roi[:] = ((layer.astype(np.uint16) * a + roi.astype(np.uint16) * (255 - a) + 127) // 255).astype(np.uint8)


def _neck_and_face(img: np.ndarray, look: Look) -> None:
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    skin = _c(look.skin)
    cv2.rectangle(img, _p(cx - 0.42 * fw, cy + 0.5 * fh), _p(cx + 0.42 * fw, cy + 1.6 * fh), _c(look.skin * 0.88), -1)
    ear, ear_skin = _p(0.15 * fw, 0.24 * fh), _c(look.skin * 0.93)
    for s in (-1, 1):
        cv2.ellipse(img, _p(cx + s * 0.97 * fw, cy - 0.02 * fh), ear, 0, 0, 360, ear_skin, -1, AA)
    cv2.ellipse(img, _p(cx, cy), _p(fw, fh), 0, 0, 360, skin, -1, AA)
    # Jaw: wider for men and for older faces, and lower as the face sags.
    jaw_center = _p(cx, cy + (0.4 + 0.06 * look.sag) * fh)
    cv2.ellipse(img, jaw_center, _p(fw * look.jaw, fh * 0.62), 0, 0, 360, skin, -1, AA)
    if look.beard:
        stubble = _c(_lerp(look.skin, (70, 70, 80), look.beard))
        cv2.ellipse(img, _p(cx, cy + 0.55 * fh), _p(fw * look.jaw * 0.92, fh * 0.45), 0, 0, 180, stubble, -1, AA)


def _eyes_and_brows(img: np.ndarray, look: Look) -> None:
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    eye_y, brow_y = cy - 0.12 * fh, cy - 0.32 * fh
    for s in (-1, 1):
        t = np.linspace(0, 1, 6)
        brow = np.stack([cx + s * (0.14 + 0.48 * t) * fw, brow_y - 0.05 * fh * np.sin(np.pi * (0.3 + 0.7 * t))], axis=1)
        cv2.polylines(img, [brow.round().astype(np.int32)], False, _c(look.brow), look.brow_thickness, AA)
        ex = cx + s * 0.38 * fw
        axes = _p(0.17 * fw, 0.07 * fh * look.eye_open)
        cv2.ellipse(img, _p(ex, eye_y), axes, 0, 0, 360, (236.0, 232.0, 228.0), -1, AA)
        cv2.circle(img, _p(ex, eye_y), int(round(0.065 * fw)), (48.0, 32.0, 26.0), -1, AA)
        cv2.ellipse(img, _p(ex, eye_y), axes, 0, 180, 360, _c(look.brow * 0.6), 2, AA)


def _nose_and_mouth(img: np.ndarray, look: Look) -> None:
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    nose_y, mouth_y = cy + 0.3 * fh, cy + 0.6 * fh
    shadow = _c(look.skin * 0.8)
    cv2.line(img, _p(cx + 0.05 * fw, cy - 0.02 * fh), _p(cx + 0.12 * fw, nose_y - 0.04 * fh), shadow, 2, AA)
    cv2.ellipse(img, _p(cx, nose_y - 0.02 * fh), _p(0.17 * fw, 0.06 * fh), 0, 15, 165, _c(look.skin * 0.72), 2, AA)
    nostril, nostril_color = _p(0.045 * fw, 0.022 * fh), _c(look.skin * 0.45)
    for s in (-1, 1):
        cv2.ellipse(img, _p(cx + s * 0.08 * fw, nose_y), nostril, 0, 0, 360, nostril_color, -1, AA)
    cv2.ellipse(img, _p(cx, mouth_y), _p(0.3 * fw, 0.07 * fh), 0, 0, 360, _c(look.lips), -1, AA)
    cv2.line(img, _p(cx - 0.29 * fw, mouth_y), _p(cx + 0.29 * fw, mouth_y), _c(look.lips * 0.55), 2, AA)


def _age_marks(img: np.ndarray, look: Look, rng: np.random.Generator) -> None:
    """Wrinkles, eye bags and spots, their contrast growing smoothly with apparent age."""
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    line = _c(_lerp(look.skin, (90, 60, 50), 0.45 * look.wrinkle))
    eye_y, nose_y, mouth_y = cy - 0.12 * fh, cy + 0.3 * fh, cy + 0.6 * fh
    for k in range(3):  # forehead lines, hidden under bangs when the hairline is low
        y = cy - (0.45 + 0.09 * k) * fh
        cv2.ellipse(img, _p(cx, y + 0.5 * fw), _p(0.42 * fw, 0.5 * fw), 0, 235, 305, line, 2, AA)
    for s in (-1, 1):
        ex = cx + s * 0.38 * fw
        cv2.ellipse(img, _p(ex, eye_y + 0.06 * fh), _p(0.15 * fw, 0.06 * fh), 0, 20, 160, line, 2, AA)
        for k in (-1, 0, 1):  # crow's feet
            start = _p(ex + s * 0.22 * fw, eye_y + k * 0.03 * fh)
            cv2.line(img, start, _p(ex + s * 0.34 * fw, eye_y + k * 0.07 * fh), line, 1, AA)
        cv2.line(img, _p(cx + s * 0.2 * fw, nose_y), _p(cx + s * 0.36 * fw, mouth_y + 0.06 * fh), line, 2, AA)
    for _ in range(look.spots):
        x, y = cx + rng.uniform(-0.7, 0.7) * fw, cy + rng.uniform(-0.6, 0.3) * fh
        cv2.circle(img, _p(x, y), int(rng.integers(1, 3)), _c(look.skin * 0.82), -1, AA)


def _glasses(img: np.ndarray, look: Look) -> None:
    cx, fw, fh, eye_y = look.cx, look.fw, look.fh, look.cy - 0.12 * look.fh
    frame, lens = look.glasses, _p(0.27 * fw, 0.16 * fh)
    for s in (-1, 1):
        cv2.ellipse(img, _p(cx + s * 0.4 * fw, eye_y), lens, 0, 0, 360, frame, 2, AA)
        temple = _p(cx + s * 0.67 * fw, eye_y - 0.03 * fh), _p(cx + s * 0.98 * fw, eye_y - 0.05 * fh)
        cv2.line(img, *temple, frame, 2, AA)
    cv2.line(img, _p(cx - 0.13 * fw, eye_y - 0.03 * fh), _p(cx + 0.13 * fw, eye_y - 0.03 * fh), frame, 2, AA)


def draw_mask(img: np.ndarray, look: Look, style: MaskStyle, place: str) -> None:
    """Draw a mask in place: `wear` covers nose and mouth; `nose_out` and `chin` are worn wrongly."""
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    eye_y, nose_y, mouth_y = cy - 0.12 * fh, cy + 0.3 * fh, cy + 0.6 * fh
    top, drop, arch = {
        "wear": (eye_y + 0.17 * fh, 0.0, (0.12 if style.kind == "kf94" else 0.05) * fh),
        "nose_out": (nose_y + 0.07 * fh, 0.1 * fh, 0.02 * fh),
        "chin": (mouth_y + 0.12 * fh, 0.22 * fh, 0.02 * fh),
    }[place]
    ax, ay = fw * 1.05 * max(1.0, look.jaw + 0.1), fh * 0.95
    ecy = cy + 0.1 * fh + drop
    x0, y0 = int(cx - ax) - 2, int(top - arch) - 2
    x1, y1 = int(cx + ax) + 3, min(H, int(ecy + ay) + 3)
    roi = img[y0:y1, x0:x1]
    # The cloth: the face ellipse below an arched top edge (the arch rises over the nose bridge).
    alpha = np.zeros(roi.shape[:2], np.uint8)
    cv2.ellipse(alpha, _p(cx - x0, ecy - y0), _p(ax, ay), 0, 0, 360, 255, -1, AA)
    xs = np.linspace(-ax, ax, 25)
    edge = np.stack([cx + xs - x0, top - arch * (1 - (xs / ax) ** 2) - y0], axis=1)
    below = np.vstack([edge, [[x1 - x0, y1 - y0], [0, y1 - y0]]]).round().astype(np.int32)
    cut = np.zeros_like(alpha)
    cv2.fillPoly(cut, [below], 255, AA)
    alpha = cv2.min(alpha, cut)
    layer = _fabric(roi.shape, style, top - y0)
    _blend(roi, layer, alpha)
    for s in (-1, 1):  # ear loops
        ear = (cx + s * 0.98 * fw, cy + 0.02 * fh)
        cv2.line(img, _p(cx + s * 0.93 * ax, top + 0.05 * fh), _p(*ear), style.loop, 2, AA)
        low = _p(cx + s * 0.8 * ax, min(ecy + 0.5 * ay, y1 - 4))
        cv2.line(img, low, _p(ear[0], ear[1] + 0.2 * fh), style.loop, 2, AA)


def _fabric(shape: tuple[int, ...], style: MaskStyle, top: float) -> np.ndarray:
    """The mask's cloth in a box of `shape`, shaded darker towards the chin."""
    h, w = shape[:2]
    layer = np.empty(shape, np.uint8)
    layer[:] = style.color
    kind, gap = style.kind, style.spacing
    if kind == "surgical":  # pleats
        for k in (1, 2, 3):
            y = int(top + k * (h - top) / 4.5)
            cv2.line(layer, (0, y), (w, y), _c(np.array(style.color) * 0.82), 2, AA)
    elif kind == "kf94":  # centre seam
        cv2.line(layer, (w // 2, 0), (w // 2, h), _c(np.array(style.color) * 0.75), 2, AA)
    elif kind == "stripes":
        for x in range(-h, w, gap):
            cv2.line(layer, (x, h), (x + h, 0), style.second, max(2, gap // 3), AA)
    elif kind == "dots":
        for y in range(gap // 2, h, gap):
            for x in range((y // gap % 2) * gap // 2, w, gap):
                cv2.circle(layer, (x, y), max(2, gap // 4), style.second, -1, AA)
    elif kind == "two_tone":
        cv2.rectangle(layer, (0, int(top + 0.55 * (h - top))), (w, h), style.second, -1)
    shade = np.linspace(1.0, 0.84, h, dtype=np.float32)[:, None, None]
    return (layer * shade).astype(np.uint8)


def _photo_masks(look: Look, swap: bool) -> dict[str, tuple[MaskStyle, str] | None]:
    """What each stem shows. A swapped person's incorrect_mask and normal photos trade content."""
    shows = {f"mask{k + 1}": (look.masks[k], "wear") for k in range(5)}
    wrong = (look.masks[look.incorrect_mask], look.incorrect_place)
    shows["incorrect_mask"], shows["normal"] = (None, wrong) if swap else (wrong, None)
    return shows


def _camera(img: np.ndarray, look: Look, rng: np.random.Generator, noise: np.ndarray) -> np.ndarray:
    """One shot: where the person stands plus a little shake and zoom, then exposure, blur and sensor noise."""
    # Zoom by resizing and shift by cropping: a quarter of the cost of a general warp, which dominated the run.
    scale = look.scale * rng.uniform(0.97, 1.03)
    size = (round(W * scale), round(H * scale))
    img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    shift = np.asarray(look.offset) + rng.normal(0, 4, 2)
    # The face centre (cx, cy) moves to (cx, cy) + shift.
    x0 = round(look.cx * size[0] / W - look.cx - shift[0])
    y0 = round(look.cy * size[1] / H - look.cy - shift[1])
    pad = max(0, -x0, -y0, x0 + W - size[0], y0 + H - size[1])
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    img = img[y0 + pad : y0 + pad + H, x0 + pad : x0 + pad + W]
    # Exposure and white balance: a gain per channel and an offset.
    exposure = np.zeros((3, 4), np.float32)
    exposure[np.arange(3), np.arange(3)] = rng.uniform(0.88, 1.1) * rng.normal(1, 0.025, 3)
    exposure[:, 3] = rng.normal(0, 4)
    img = cv2.transform(img, exposure)
    img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 0.9))
    dy, dx = rng.integers(0, noise.shape[0] - H + 1), rng.integers(0, noise.shape[1] - W + 1)
    return cv2.add(img, noise[dy : dy + H, dx : dx + W], dtype=cv2.CV_8U)


def render_person(
    seed: int, split: int, index: int, gender: str, age: int, swap: bool = False
) -> dict[str, np.ndarray]:
    """The seven photos of one person, RGB uint8 (H, W, 3) by stem, before file encoding."""
    return _render(seed, split, index, gender, age, swap)[0]


def _render(seed, split, index, gender, age, swap) -> tuple[dict[str, np.ndarray], Look]:
    look_rng, draw_rng, photo_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, split, index]).spawn(3)
    )
    look = draw_look(look_rng, gender, age)
    base = render_base(look, draw_rng)
    # Side and top light fall on the scene; the masks drawn later sit near the centre, where it is weakest.
    base = cv2.multiply(base, _ramp(look.light, (128, 128, 128)), scale=1 / 128)
    # One noise field per person, seen through a different window in each photo.
    noise = draw_rng.integers(-look.noise, look.noise + 1, (H + 16, W + 16, 3), dtype=np.int16)
    photos = {}
    for stem, shown in _photo_masks(look, swap).items():
        img = base.copy()
        if shown is not None:
            draw_mask(img, look, *shown)
        photos[stem] = _camera(img, look, photo_rng, noise)
    return photos, look


# --- files --------------------------------------------------------------------------------------------------


def encode(img: np.ndarray, ext: str, quality: int) -> bytes:
    """File bytes of an RGB photo. Every photo went through a phone's JPEG; .png ones were converted later."""
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 0])
    if ok and ext == ".png":
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
        ok, data = cv2.imencode(".png", decoded, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {ext} image")
    return data.tobytes()


def _junk_bytes(rng: np.random.Generator) -> bytes:
    """The head of a macOS AppleDouble file followed by a little garbage."""
    return b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + rng.bytes(int(rng.integers(4, 40)))


@dataclass(frozen=True)
class _Task:
    """One person's photos to write: all a worker needs, and cheap to send to it."""

    root: str
    seed: int
    split: int
    index: int
    gender: str
    age: int
    swap: bool
    files: tuple[tuple[str, str], ...]  # (stem, path relative to root)
    junk: tuple[str, ...]  # stems with a `._` file beside them


def _write_person(task: _Task) -> None:
    photos, look = _render(task.seed, task.split, task.index, task.gender, task.age, task.swap)
    root = Path(task.root)
    junk_rng = np.random.default_rng([task.seed, task.split, task.index, 9])
    for stem, rel in task.files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(photos[stem], path.suffix, look.quality))
        if stem in task.junk:
            (path.parent / f"{layout.JUNK_PREFIX}{path.name}").write_bytes(_junk_bytes(junk_rng))


def _init_worker() -> None:
    cv2.setNumThreads(1)  # the pool is the parallelism; OpenCV's own threads would only compete with it


def _tasks(root: Path, train: pd.DataFrame, evals: pd.DataFrame, images: pd.DataFrame, seed: int) -> list[_Task]:
    tasks = []
    for index, row in enumerate(train.itertuples(index=False)):
        files = tuple(
            (stem, f"{layout.TRAIN_IMAGES}/{row.path}/{stem}{ext}")
            for stem, ext in zip(layout.STEMS, row.exts, strict=True)
        )
        tasks.append(
            _Task(str(root), seed, TRAIN, index, row.gender, int(row.age), bool(row.mask_swap), files, row.junk)
        )
    by_person = images.sort_values(["person", "stem"]).groupby("person")
    for index, row in enumerate(evals.itertuples(index=False)):
        photos = by_person.get_group(index)
        files = tuple((s, f"{layout.EVAL_IMAGES}/{i}") for s, i in zip(photos["stem"], photos["ImageID"], strict=True))
        tasks.append(_Task(str(root), seed, EVAL, index, row.gender, int(row.age), False, files, ()))
    return tasks


def _write_tables(root: Path, train: pd.DataFrame, images: pd.DataFrame) -> None:
    csv = {"index": False, "lineterminator": "\n"}
    table = pd.DataFrame({
        "id": train["id"],
        "gender": train["csv_gender"],
        "race": "Asian",
        "age": train["csv_age"],
        "path": train["path"],
    })  # fmt: skip
    (root / layout.TRAIN_CSV).parent.mkdir(parents=True, exist_ok=True)
    table[layout.TRAIN_COLUMNS].to_csv(root / layout.TRAIN_CSV, **csv)
    train[["id", "path", "gender", "age", "mask_swap"]].to_csv(root / TRAIN_TRUTH, **csv)
    (root / layout.EVAL_IMAGES).mkdir(parents=True, exist_ok=True)
    images.assign(ans=0)[layout.EVAL_COLUMNS].to_csv(root / layout.EVAL_CSV, **csv)
    images[["ImageID", "ans", "mask", "gender", "age"]].to_csv(root / layout.EVAL_LABELS, **csv)


def run(
    out: str | os.PathLike, people: int = 300, eval_people: int = 150, seed: int = 0, workers: int | None = None
) -> Path:
    """Write a sample with `people` train folders and `eval_people` eval people (7 photos each) to `out`.

    The folder appears complete or not at all. `workers` processes draw people in parallel (default: the
    CPU count, one process for small samples); the bytes are the same for any number.
    """
    if not 1 <= people <= MAX_PEOPLE or eval_people < 0:
        raise ParamsError(
            f"synth: need 1 <= people <= {MAX_PEOPLE} and eval_people >= 0, got {people} and {eval_people}"
        )
    out = Path(out)
    train = draw_train_people(people, seed)
    evals = draw_eval_people(eval_people, seed)
    images = eval_images(evals, seed)
    if workers is None:
        workers = 1 if people + eval_people < 60 else min(os.cpu_count() or 1, 8)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        _write_tables(tmp, train, images)
        tasks = _tasks(tmp, train, evals, images, seed)
        with tqdm(total=len(tasks), desc="synth", unit="person", file=sys.stderr) as bar:
            if workers <= 1:
                for task in tasks:
                    _write_person(task)
                    bar.update()
            else:
                context = multiprocessing.get_context("spawn")  # no fork: the parent may hold torch's threads
                with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
                    for _ in pool.map(_write_person, tasks, chunksize=4):
                        bar.update()
    return out


generate = run
