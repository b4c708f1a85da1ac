"""Who the sample's people are: ids, true gender and age, what train.csv says about them, and how their folders'
files are named.

The people copy what shapes the code and the scores:

- the layout and its quirks: string ids with zero padding and suffixes, one id on two folders, mixed
  extensions (also inside one folder), macOS `._*` junk, a 40-hex eval naming with hidden identities;
- the class balance: ~61% female, ages bunched at ~20 and in the fifties, every "old" person exactly 60,
  so the age threshold trick (58) has something to grow;
- the published label noise, on the same person ids, so the override file can be measured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from maskcls import layout

TRAIN, EVAL = 0, 1  # split codes in the per-person seeds

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


def _systematic(weights, n: int, rng: np.random.Generator) -> np.ndarray:
    """n indices into `weights`, each drawn within one of its expected count, in random order."""
    cdf = np.cumsum(weights, dtype=np.float64)
    cdf /= cdf[-1]
    points = (np.arange(n) + rng.random()) / n
    picks = np.minimum(np.searchsorted(cdf, points, side="right"), len(cdf) - 1)
    return rng.permutation(picks)


def sample_demographics(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Genders ("male"/"female") and ages (years) of n people, in random order.

    Systematic sampling: every gender and age gets its expected count within one, so even a few hundred
    people show the real imbalance instead of a noisy draw of it.
    """
    gender = np.asarray(layout.GENDERS)[_systematic([1 - FEMALE_SHARE, FEMALE_SHARE], n, rng)]
    ages = np.asarray(list(AGE_PERCENT), dtype=np.int64)
    age = ages[_systematic(list(AGE_PERCENT.values()), n, rng)]
    return gender, age


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


def _pin(values: np.ndarray, row: int, allowed, free: np.ndarray) -> None:
    if values[row] in allowed:
        return
    for other in free:
        if values[other] in allowed:
            values[row], values[other] = values[other], values[row]
            return
    values[row] = allowed[len(allowed) // 2]  # no free row has it: the sample is too small to keep its balance


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
