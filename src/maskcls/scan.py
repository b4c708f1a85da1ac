"""The competition folder -> the image index tables every later stage keys on (docs/architecture.md).

`scan_train` / `scan_eval` read the csvs and list the folders without decoding any image; they collect
every problem instead of stopping at the first, so `maskcls validate` can report them all at once.
`load_train` / `load_eval` return the tables and raise DataError if the scan found anything wrong.

Person ids: `person` is the csv `id` as a string (`000001`, `001774-2`). The real data has one id, `003397`,
on two rows with two different folders (ages 19 and 20): most likely two people given one id. Both are kept,
and so that `person` still groups the photos of exactly one person, the folders of such an id are numbered
in folder-name order: the first keeps the id, the next become `003397#2`, `003397#3`, ... `#` never
occurs in a csv id (the scan rejects it).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from maskcls import layout
from maskcls.errors import DataError

TRAIN_INDEX_COLUMNS = ["row", "person", "folder", "stem", "file", "gender", "age", "mask"]
EVAL_INDEX_COLUMNS = ["row", "ImageID", "file"]
AGE_RANGE = (1, 100)  # a csv age outside this is a typo, not a person
PERSON_SEPARATOR = "#"  # `003397#2`: the second folder of an id that names two folders
MESSAGE_LINES = 50  # longer reports end with "... and N more"
_OS_JUNK = {".DS_Store", "Thumbs.db", "desktop.ini"}
_PLAIN_ID = re.compile(r"[^\s#/\\]+")
_WHOLE_NUMBER = re.compile(r"[0-9]+")


class DataWarning(UserWarning):
    """Something odd in the competition folder that the pipeline accepts (and says how)."""


@dataclass
class Findings:
    """Problems (the data cannot be used as is) and notes (accepted with a warning), naming files or rows."""

    problems: list[str] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)  # headline -> the files or rows it concerns

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def note(self, headline: str, where: str) -> None:
        self.notes.setdefault(headline, []).append(where)

    def extend(self, other: Findings) -> None:
        self.problems.extend(other.problems)
        for headline, lines in other.notes.items():
            self.notes.setdefault(headline, []).extend(lines)

    def warn(self) -> None:
        for headline, lines in self.notes.items():
            warnings.warn(f"{headline} ({len(lines)}):\n{_cap(lines)}", DataWarning, stacklevel=2)

    def raise_if_problems(self, raw_dir: Path) -> None:
        if self.problems:
            n = len(self.problems)
            raise DataError(
                f"{raw_dir}: {n} problem{'s' if n > 1 else ''} in the competition folder "
                f"(paths are relative to it; the raw data was not changed):\n{_cap(self.problems)}"
            )


@dataclass
class Scan:
    """An index table and what was found on the way; the table is only complete without problems."""

    frame: pd.DataFrame
    findings: Findings


def whole_number(text: str) -> bool:
    """ASCII digits only: `45`, not ` 45`, `45.0` or other scripts' digits."""
    return _WHOLE_NUMBER.fullmatch(text) is not None


def is_junk(name: str) -> bool:
    """macOS resource forks (`._mask1.jpg`) and desktop metadata files sit beside the photos; never data."""
    return name.startswith(layout.JUNK_PREFIX) or name in _OS_JUNK


def load_train(raw_dir: str | Path) -> pd.DataFrame:
    """`data/index/train.csv`: one row per training photo, sorted by folder then stem order."""
    return _loaded(scan_train(raw_dir), raw_dir)


def load_eval(raw_dir: str | Path) -> pd.DataFrame:
    """`data/index/eval.csv`: one row per eval photo in info.csv order."""
    return _loaded(scan_eval(raw_dir), raw_dir)


def _loaded(scan: Scan, raw_dir) -> pd.DataFrame:
    scan.findings.raise_if_problems(Path(raw_dir))
    scan.findings.warn()
    return scan.frame


def _open_split(
    raw_dir: Path, images_rel: str, csv_rel: str, columns: list[str], found: Findings
) -> tuple[Path, pd.DataFrame | None]:
    """A split's image folder and csv table; the table is None when either is unusable (problems recorded)."""
    images = raw_dir / images_rel
    split = images_rel.split("/")[0]
    if not images.is_dir():
        found.problem(f"{images_rel}/", f"folder not found; the raw dir must hold {split}/ as shipped")
    table = read_csv(raw_dir, csv_rel, columns, found)
    return images, table if images.is_dir() else None


# --- train ------------------------------------------------------------------------------------------------


def scan_train(raw_dir: str | Path) -> Scan:
    found = Findings()
    empty = pd.DataFrame(columns=TRAIN_INDEX_COLUMNS)
    images, table = _open_split(Path(raw_dir), layout.TRAIN_IMAGES, layout.TRAIN_CSV, layout.TRAIN_COLUMNS, found)
    if table is None:
        return Scan(empty, found)

    rows = _usable_rows(table, images, found)
    _check_unlisted_folders(images, set(table["path"]), found)
    persons = _person_ids(rows, found)
    records = []
    for row in rows:
        # A row with a bad label still has its photos checked, so one run reports everything;
        # its missing label only ever reaches a frame that comes with problems.
        gender = layout.GENDER_TO_LABEL.get(row["gender"])
        age = int(row["age"]) if whole_number(row["age"]) else None
        for stem, name in _folder_photos(images / row["path"], found):
            records.append(
                {
                    "person": persons[row["path"]],
                    "folder": row["path"],
                    "stem": stem,
                    "file": f"{layout.TRAIN_IMAGES}/{row['path']}/{name}",
                    "gender": gender,
                    "age": age,
                    "mask": layout.STEM_TO_MASK[stem],
                }
            )
    if not records:
        if not found.problems:
            found.problem(layout.TRAIN_CSV, "no training photos listed; is this the right folder?")
        return Scan(empty, found)
    frame = pd.DataFrame.from_records(records)
    stem_order = frame["stem"].map({s: i for i, s in enumerate(layout.STEMS)})
    frame = frame.assign(_order=stem_order).sort_values(["folder", "_order"], kind="stable").drop(columns="_order")
    frame.insert(0, "row", range(len(frame)))
    return Scan(frame.reset_index(drop=True)[TRAIN_INDEX_COLUMNS], found)


def read_csv(raw_dir: Path, name: str, columns: list[str], found: Findings) -> pd.DataFrame | None:
    """A competition csv with every cell as a string (`000001` keeps its zeros), or None if unusable."""
    path = raw_dir / name
    if not path.is_file():
        found.problem(name, "file not found; the raw dir must hold the competition's csv files as shipped")
        return None
    try:
        with warnings.catch_warnings():
            # Rows longer than the header would otherwise shift into an index or be cut silently.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # keep_default_na: an id such as `NA` stays a string; empty cells become "" and are reported.
            table = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        found.problem(name, f"not a readable csv ({str(exc).strip() or type(exc).__name__}); restore the original")
        return None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        found.problem(
            name,
            f"missing column(s) {', '.join(missing)}; expected header {','.join(columns)} "
            f"(found {','.join(map(str, table.columns))})",
        )
        return None
    extra = [str(c) for c in table.columns if c not in columns]
    if extra:
        found.note(f"{name}: unknown columns, ignored", ", ".join(extra))
    return table


def csv_line(name: str, index: int) -> str:
    """How a report names a csv row: the line number in the file (the header is line 1)."""
    return f"{name} line {index + 2}"


def _usable_rows(table: pd.DataFrame, images: Path, found: Findings) -> list[pd.Series]:
    """Train csv rows with an existing folder of their own, each once; every faulty row is reported."""
    seen_rows: dict[tuple, str] = {}
    seen_folders: dict[str, str] = {}
    usable = []
    for index, row in table.iterrows():
        line = csv_line(layout.TRAIN_CSV, index)
        where = f"{line} (id {row['id']!r})"
        key = tuple(row[c] for c in layout.TRAIN_COLUMNS)
        if key in seen_rows:
            found.problem(where, f"repeats {seen_rows[key]}; delete one of the two rows")
            continue
        seen_rows[key] = line
        labels_ok = _labels_ok(row, where, found)
        if not _folder_ok(row["path"], where, images, seen_folders, found):
            continue
        seen_folders[row["path"]] = line
        if labels_ok and row["path"] != layout.person_folder(row["id"], row["gender"], row["age"], row["race"]):
            found.note("folder names that disagree with their csv row (the csv labels are used)", where)
        usable.append(row)
    return usable


def _folder_ok(path: str, where: str, images: Path, seen_folders: dict[str, str], found: Findings) -> bool:
    if not path or path in (".", "..") or "/" in path or "\\" in path:
        found.problem(where, f"path {path!r} is not a folder name inside {layout.TRAIN_IMAGES}/; fix the row")
        return False
    if path in seen_folders:
        found.problem(
            where,
            f"points at folder {path} like {seen_folders[path]}; "
            "each folder is one person: delete or correct one of the two rows",
        )
        return False
    if not (images / path).is_dir():
        found.problem(where, f"no folder {layout.TRAIN_IMAGES}/{path}/; restore the folder or delete the row")
        return False
    return True


def _labels_ok(row: pd.Series, where: str, found: Findings) -> bool:
    ok = True
    if not _PLAIN_ID.fullmatch(row["id"]):
        found.problem(where, "id is empty or holds spaces, '#', '/' or '\\'; fix the id")
        ok = False
    if row["gender"] not in layout.GENDERS:
        found.problem(where, f"gender {row['gender']!r} is not one of {', '.join(layout.GENDERS)}; fix the row")
        ok = False
    age = row["age"]
    if not whole_number(age):
        found.problem(where, f"age {age!r} is not a whole number of years; fix the row")
        ok = False
    elif not AGE_RANGE[0] <= int(age) <= AGE_RANGE[1]:
        found.problem(where, f"age {age} is outside {AGE_RANGE[0]}..{AGE_RANGE[1]}; fix the row")
        ok = False
    return ok


def _check_unlisted_folders(images: Path, listed: set[str], found: Findings) -> None:
    for entry in sorted(images.iterdir()):
        if is_junk(entry.name):
            continue
        where = f"{layout.TRAIN_IMAGES}/{entry.name}"
        if not entry.is_dir():
            found.problem(where, "unexpected file among the person folders; move it out of the raw dir")
        elif entry.name not in listed:
            found.problem(
                where + "/",
                f"folder has no row in {layout.TRAIN_CSV}; add its row or move the folder out of the raw dir",
            )


def _folder_photos(folder: Path, found: Findings) -> list[tuple[str, str]]:
    """(stem, file name) of each photo present; missing, extra and doubled photos are reported."""
    where = f"{layout.TRAIN_IMAGES}/{folder.name}"
    by_stem: dict[str, list[str]] = {}
    for entry in sorted(folder.iterdir()):
        if is_junk(entry.name):
            continue
        stem, ext = _split_name(entry.name)
        if entry.is_dir() or stem not in layout.STEM_TO_MASK or ext not in layout.IMAGE_EXTENSIONS:
            kind = "folder" if entry.is_dir() else "file"
            found.problem(
                f"{where}/{entry.name}",
                f"unexpected {kind}: a person folder holds exactly {', '.join(layout.STEMS)} "
                f"as {'/'.join(layout.IMAGE_EXTENSIONS)}; remove or rename it",
            )
            continue
        by_stem.setdefault(stem, []).append(entry.name)
    photos = []
    for stem in layout.STEMS:
        names = by_stem.get(stem, [])
        if not names:
            found.problem(f"{where}/{stem}.*", "photo missing; restore it from the original data")
        elif len(names) > 1:
            found.problem(
                f"{where}/{stem}.*",
                f"{len(names)} files for one photo ({', '.join(names)}); keep one, remove the others",
            )
        else:
            photos.append((stem, names[0]))
    return photos


def _split_name(name: str) -> tuple[str, str]:
    """`mask1.JPG` -> (`mask1`, `.jpg`): extensions come in any case in the real data."""
    stem, dot, ext = name.rpartition(".")
    return (stem, f".{ext.lower()}") if dot else (name, "")


def _person_ids(rows: list[pd.Series], found: Findings) -> dict[str, str]:
    """Folder -> person id; an id with several folders gets `#2`, `#3`... on all but its first folder."""
    folders_of: dict[str, list[str]] = {}
    for row in rows:
        folders_of.setdefault(row["id"], []).append(row["path"])
    persons = {}
    for person_id, folders in folders_of.items():
        folders = sorted(folders)
        for k, folder in enumerate(folders):
            persons[folder] = person_id if k == 0 else f"{person_id}{PERSON_SEPARATOR}{k + 1}"
        if len(folders) > 1:
            named = ", ".join(f"{f} -> person {persons[f]}" for f in folders)
            found.note("one csv id on several folders, kept as separate people", f"id {person_id}: {named}")
    return persons


# --- eval -------------------------------------------------------------------------------------------------


def scan_eval(raw_dir: str | Path) -> Scan:
    found = Findings()
    empty = pd.DataFrame(columns=EVAL_INDEX_COLUMNS)
    images, table = _open_split(Path(raw_dir), layout.EVAL_IMAGES, layout.EVAL_CSV, layout.EVAL_COLUMNS, found)
    if table is None:
        return Scan(empty, found)

    on_disk = {e.name: e for e in images.iterdir() if not is_junk(e.name)}
    first_line: dict[str, str] = {}
    records = []
    for index, image_id in table["ImageID"].items():
        line = csv_line(layout.EVAL_CSV, index)
        where = f"{line} (ImageID {image_id!r})"
        if image_id in first_line:
            found.problem(where, f"duplicate ImageID, also on {first_line[image_id]}; restore the original info.csv")
            continue
        first_line[image_id] = line
        entry = on_disk.get(image_id)
        if not image_id or "/" in image_id or "\\" in image_id:
            found.problem(where, "ImageID is not a file name; restore the original info.csv")
        elif entry is None:
            found.problem(where, f"no image {layout.EVAL_IMAGES}/{image_id}; restore the image")
        elif not entry.is_file():
            found.problem(where, f"{layout.EVAL_IMAGES}/{image_id} is not a file; restore the image")
        else:
            records.append({"ImageID": image_id, "file": f"{layout.EVAL_IMAGES}/{image_id}"})
    for name in sorted(set(on_disk) - set(first_line)):
        found.problem(
            f"{layout.EVAL_IMAGES}/{name}",
            f"not listed in {layout.EVAL_CSV}; move it out of the raw dir (a submission must match info.csv)",
        )
    if not records:
        if not found.problems:
            found.problem(layout.EVAL_CSV, "no eval images listed; is this the right folder?")
        return Scan(empty, found)
    frame = pd.DataFrame.from_records(records)
    frame.insert(0, "row", range(len(frame)))
    return Scan(frame[EVAL_INDEX_COLUMNS], found)


def _cap(lines: list[str], limit: int = MESSAGE_LINES) -> str:
    shown = [f"  {line}" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"  ... and {len(lines) - limit} more")
    return "\n".join(shown)
