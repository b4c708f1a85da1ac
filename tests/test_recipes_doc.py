"""docs/recipes.md has one table per recipe: every setting the recipe sets, its value, and where it comes from.

The tables are checked against recipes/*.yaml key for key and value for value, so the two cannot drift apart.
"""

import re
from pathlib import Path

import pytest

from maskcls import recipes

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "recipes.md"
SECTION = r"(?:ver\. [1-5]|final submission|limits)"
SEED_QUOTE = re.compile(rf'^Seed, {SECTION}(?:(?:, | and ){SECTION})*: "[^"]+"')
NOT_STATED = "not stated in the seed; chosen because "


def doc_tables(text: str) -> dict[str, list[tuple[str, str, str]]]:
    """{recipe: [(key, value text, source)]} from the `## name` sections' `| setting | value | source |` tables."""
    tables: dict[str, list[tuple[str, str, str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):  # a recipe's section is headed by its name alone
            heading = re.match(r"^## (\S+)\s*$", line)
            current = heading.group(1) if heading else None
            continue
        row = re.match(r"^\| `([^`]+)` \| `([^`]*)` \| (.+) \|$", line)
        if row and current is not None:
            tables.setdefault(current, []).append(row.groups())
    return tables


TABLES = doc_tables(DOC.read_text())


def test_every_recipe_has_a_table_and_every_table_a_recipe():
    assert set(TABLES) == set(recipes.names(REPO))


@pytest.mark.parametrize("name", recipes.names(REPO))
def test_table_lists_exactly_the_settings_of_the_recipe(name):
    settings = recipes._leaves(recipes.load(name, REPO).params)
    rows = TABLES.get(name, [])
    keys = [key for key, _, _ in rows]
    assert len(keys) == len(set(keys)), f"{name}: a setting is listed twice"
    assert set(keys) == set(settings), (
        f"{name}: missing from the doc {sorted(set(settings) - set(keys))}, "
        f"not set by the recipe {sorted(set(keys) - set(settings))}"
    )
    yaml = recipes._yaml("safe")
    for key, value, _ in rows:
        assert yaml.load(value) == settings[key], f"{name}: {key} is {settings[key]!r} in the recipe, {value} in docs"


@pytest.mark.parametrize("name", recipes.names(REPO))
def test_every_row_quotes_the_seed_or_gives_a_reason(name):
    for key, _, source in TABLES.get(name, []):
        source = source.strip()
        if source.startswith(NOT_STATED):
            assert len(source) > len(NOT_STATED) + 10, f"{name}: {key}: the reason is missing"
        else:
            assert SEED_QUOTE.match(source), f"{name}: {key}: neither a seed quote nor a reason: {source[:80]}"


def test_parser_reads_a_table():
    text = "\n".join(
        [
            "## Some notes",
            "| `a` | `1` | x |",
            "## v9",
            "| setting | value | source |",
            "|---|---|---|",
            '| `train.lr` | `0.001` | Seed, ver. 5: "lr" |',
        ]
    )
    assert doc_tables(text) == {"v9": [("train.lr", "0.001", 'Seed, ver. 5: "lr"')]}
