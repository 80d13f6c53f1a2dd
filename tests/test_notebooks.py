"""Stored notebooks are fresh, complete and shaped like lessons.

nbval re-runs every notebook and compares outputs; these checks catch what it
cannot: stale or partial stored outputs, missing objectives, exercises solved by Run All.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted(
    (Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb")
)
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
        text_of(c)[:60]
        for c in code_cells(nb)
        if any(o.get("output_type") == "error" for o in c.get("outputs", []))
    ]
    assert not errors, f"{path.name}: cells with stored errors: {errors}"
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is too large to read on GitHub"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_kernelspec_is_the_one_jupyterlab_writes(path):
    # A different display name makes JupyterLab mark the notebook modified on opening.
    assert load(path)["metadata"]["kernelspec"] == {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_has_objectives_and_summary(path):
    markdown = [text_of(c).lower() for c in load(path)["cells"] if c["cell_type"] == "markdown"]
    assert "learning objectives" in markdown[0] or "learning objectives" in markdown[1]
    assert any("summary" in m for m in markdown[-3:]), f"{path.name}: no summary at the end"


SOLUTIONS = NOTEBOOKS[0].parent / "solutions"
LOAD_LINE = re.compile(r"^# %load (solutions/(\d\d)_[a-z0-9_]+\.py)$")


def output_text(cell: dict) -> str:
    """Everything a code cell's stored outputs show, as text."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        for kind in ("text/plain", "text/html"):
            parts.append("".join(output.get("data", {}).get(kind, "")))
    return "\n".join(parts)


def solution_loads(nb: dict) -> list[re.Match]:
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    return [m for c in cells if (m := LOAD_LINE.match(text_of(c).strip()))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_run_all_leaves_every_exercise_unsolved(path):
    # Solutions load only on request (`# %load`, commented), so running every cell checks
    # the untouched answer cells: each checker says "not yet solved", and no solution code
    # or answer value is stored in the notebook.
    cells = load(path)["cells"]
    checks = [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code" and text_of(c).lstrip().startswith("exercises.check_")
    ]
    for index in checks:
        shown = output_text(cells[index])
        assert "Not yet solved" in shown, f"{path.name}: checker cell {index} shows {shown[:80]!r}"
        following = [text_of(c).strip() for c in cells[index + 1 : index + 3]]
        assert any(LOAD_LINE.match(text) for text in following), (
            f"{path.name}: checker cell {index} is not followed by a `# %load solutions/...` cell"
        )
    for index, cell in enumerate(cells):
        assert "solution" not in cell.get("metadata", {}).get("tags", []), (
            f"{path.name}: cell {index} is a stored solution; solutions live in {SOLUTIONS.name}/"
        )
        assert "Correct:" not in output_text(cell), (
            f"{path.name}: cell {index} shows a solved check"
        )
    for match in solution_loads(load(path)):
        assert match.group(2) == path.name[:2], f"{path.name} loads {match.group(1)}"
        assert (path.parent / match.group(1)).is_file(), f"{path.name}: no {match.group(1)}"


def test_every_solution_file_is_loaded_by_its_lesson():
    loaded = {m.group(1) for p in NOTEBOOKS for m in solution_loads(load(p))}
    files = {f"solutions/{p.name}" for p in SOLUTIONS.glob("*.py")}
    assert files and files == loaded
