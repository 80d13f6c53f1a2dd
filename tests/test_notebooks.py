"""Stored notebooks are fresh, complete and shaped like lessons.

nbval re-runs every notebook and compares outputs; these checks catch what it
cannot: stale or partial stored outputs, missing objectives, unhidden solutions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_BYTES = 2_000_000


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def text_of(cell: dict) -> str:
    return "".join(cell["source"])


def test_lessons_are_numbered_in_teaching_order():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(len(NOTEBOOKS))) and len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_fresh_and_error_free(path):
    nb = load(path)
    counts = [c.get("execution_count") for c in code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts} are not 1..n: re-run `make notebooks`"
    )
    errors = [
        text_of(c)[:60] for c in code_cells(nb)
        if any(o.get("output_type") == "error" for o in c.get("outputs", []))
    ]
    assert not errors, f"{path.name}: cells with stored errors: {errors}"
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is too large to read on GitHub"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_has_objectives_and_summary(path):
    markdown = [text_of(c).lower() for c in load(path)["cells"] if c["cell_type"] == "markdown"]
    assert "learning objectives" in markdown[0] or "learning objectives" in markdown[1]
    assert any("summary" in m for m in markdown[-3:]), f"{path.name}: no summary at the end"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercise_solutions_are_hidden_and_checked(path):
    cells = load(path)["cells"]
    for index, cell in enumerate(cells):
        if "solution" not in cell.get("metadata", {}).get("tags", []):
            continue
        assert cell["metadata"].get("jupyter", {}).get("source_hidden"), (
            f"{path.name}: solution cell {index} is not hidden"
        )
        following = "".join(text_of(c) for c in cells[index + 1 : index + 3])
        assert "exercises.check_" in following, (
            f"{path.name}: solution cell {index} is not followed by a checker call"
        )
