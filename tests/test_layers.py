"""The analysis core never imports the course layer or the command line."""

import subprocess
import sys

import pytest

CORE_MODULES = [
    "nima_lessons",
    "nima_lessons.config",
    "nima_lessons.io",
    "nima_lessons.pipeline",
    "nima_lessons.store",
    "nima_lessons.labels",
    "nima_lessons.tiling",
    "nima_lessons.counting",
    "nima_lessons.cluster",
]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_loads_no_course_module(module):
    probe = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if m.startswith(('nima_lessons.course', 'nima_lessons.cli')))\n"
        "print(','.join(bad))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"importing {module} loaded the course layer: {loaded}"
