"""Label-noise fixes published for the real data, applied to the train index in memory, never to files.

`resources/overrides.csv` holds one fix per row, `person,field,value,set,note`:

- `gender`: `male` or `female` sets it; `toggle` flips it (the disputed list gives no direction).
- `age`: the corrected age in years. The published "under 30" is recorded as 20: any age under 30 falls in
  the same band, whatever `relabel_age.old_from` is.
- `mask_swap`: `incorrect_mask/normal` swaps the mask labels of those two photos of the person.
- `set`: `core` fixes apply with `relabel_age.overrides: core` or `all`; `disputed` ones with `all` only.

`person` is matched exactly against the index's `person` (the second folder of a doubled id is `003397#2`).
Rows for people absent from the data are skipped: the generated sample does not have the real ids. A row with
an unknown field, set or value fails with its line named, so a typo never silently drops a fix.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from maskcls import layout
from maskcls.errors import DataError
from maskcls.scan import AGE_RANGE, whole_number

COLUMNS = ["person", "field", "value", "set", "note"]
FIELDS = ("gender", "age", "mask_swap")
SETS = ("core", "disputed")
# relabel_age.overrides -> the sets it applies; exactly the modes of params.OverridesMode.
SETS_BY_MODE = {"off": (), "core": ("core",), "all": ("core", "disputed")}
TOGGLE = "toggle"


def default_path() -> Path:
    return Path(str(resources.files("maskcls") / "resources" / "overrides.csv"))


def _row_problem(row: pd.Series) -> str | None:
    field, value = row["field"], row["value"]
    if not row["person"]:
        return "person is empty"
    if field not in FIELDS:
        return f"unknown field {field!r}; fields are {', '.join(FIELDS)}"
    if row["set"] not in SETS:
        return f"unknown set {row['set']!r}; sets are {', '.join(SETS)}"
    if field == "gender" and value not in (*layout.GENDERS, TOGGLE):
        return f"gender value {value!r} is not {', '.join(layout.GENDERS)} or {TOGGLE}"
    if field == "age" and not (whole_number(value) and AGE_RANGE[0] <= int(value) <= AGE_RANGE[1]):
        return f"age value {value!r} is not a whole number in {AGE_RANGE[0]}..{AGE_RANGE[1]}"
    if field == "mask_swap":
        stems = value.split("/")
        if len(stems) != 2 or stems[0] == stems[1] or not set(stems) <= set(layout.STEMS):
            return f"mask_swap value {value!r} is not two different photo names like incorrect_mask/normal"
    return None


def check(table: pd.DataFrame, source: str = "overrides") -> None:
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; the header is {','.join(COLUMNS)}")
    seen: dict[tuple[str, str], int] = {}
    for index, row in table.reset_index(drop=True).iterrows():
        line = index + 2  # the header is line 1
        problem = _row_problem(row)
        key = (row["person"], row["field"])
        if problem is None and key in seen:
            problem = f"a second {row['field']} fix for {row['person']} (line {seen[key]}); keep one"
        if problem:
            raise DataError(f"{source} line {line}: {problem}")
        seen[key] = line


def load(path: str | Path | None = None) -> pd.DataFrame:
    """The overrides table, every row checked; DataError names the first bad line."""
    path = Path(path) if path is not None else default_path()
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    check(table, str(path))
    return table


def _apply_one(out: pd.DataFrame, rows: pd.Series, field: str, value: str) -> None:
    if field == "gender":  # check() admits only the three fields handled here
        if value == TOGGLE:
            out.loc[rows, "gender"] = 1 - out.loc[rows, "gender"]
        else:
            out.loc[rows, "gender"] = layout.GENDER_TO_LABEL[value]
    elif field == "age":
        out.loc[rows, "age"] = int(value)
    elif field == "mask_swap":
        first, second = value.split("/")
        # The photo saved as `first` shows what `second` should: each takes the other's label.
        out.loc[rows & (out["stem"] == first), "mask"] = layout.STEM_TO_MASK[second]
        out.loc[rows & (out["stem"] == second), "mask"] = layout.STEM_TO_MASK[first]


def apply(frame: pd.DataFrame, mode: str, overrides: str | Path | pd.DataFrame | None = None) -> pd.DataFrame:
    """A copy of the train index with the fixes of `mode` (off | core | all) applied.

    `frame` needs the columns person, stem, mask, gender, age (labels as in the index). `overrides` is a path
    or an already loaded table; by default the packaged table.
    """
    if mode not in SETS_BY_MODE:  # unreachable from params.yaml, whose relabel_age.overrides is checked when it is read
        raise ValueError(f"no overrides mode {mode!r}; the modes are {', '.join(SETS_BY_MODE)}")
    out = frame.copy()
    if mode == "off":
        return out
    if isinstance(overrides, pd.DataFrame):
        table = overrides
        check(table)
    else:
        table = load(overrides)
    for _, fix in table[table["set"].isin(SETS_BY_MODE[mode])].iterrows():
        rows = out["person"] == fix["person"]
        if rows.any():
            _apply_one(out, rows, fix["field"], fix["value"])
    return out
