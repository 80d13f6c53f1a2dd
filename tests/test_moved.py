"""Old import paths of the course layer keep working, each with a warning naming the new place."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import nima_lessons
from nima_lessons._moved import MOVED_MODULES


@pytest.fixture(autouse=True)
def forget_old_names():
    """Drop the old names from sys.modules and the package, so each import is a first one."""

    def forget():
        for key in [
            key
            for key in sys.modules
            if key.split(".")[:2] in [old.split(".") for old in MOVED_MODULES]
        ]:
            del sys.modules[key]
        for old in MOVED_MODULES:
            nima_lessons.__dict__.pop(old.rsplit(".", 1)[1], None)

    forget()
    yield
    forget()


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_MODULES.items()))
def test_old_module_is_the_new_one_with_a_warning(old, new):
    with pytest.warns(DeprecationWarning, match=f"{old} has moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_old_submodules_and_from_imports_give_the_new_objects():
    from nima_lessons.course.bench import run_benchmarks as new_run
    from nima_lessons.course.synthetic import mandelbrot as new_mandelbrot

    with pytest.warns(DeprecationWarning, match="nima_lessons.bench has moved"):
        from nima_lessons.bench import run_benchmarks
    with pytest.warns(
        DeprecationWarning, match="nima_lessons.synthetic(.mandelbrot)? has moved"
    ) as caught:
        import nima_lessons.synthetic.mandelbrot as old_mandelbrot
    with pytest.warns(DeprecationWarning, match="nima_lessons.plotting has moved"):
        from nima_lessons import plotting
    assert run_benchmarks is new_run
    assert old_mandelbrot is new_mandelbrot
    assert len(caught) == 2  # the old package, then its module
    assert plotting.__name__ == "nima_lessons.course.plotting"


def test_warning_points_at_the_importing_line():
    with pytest.warns(DeprecationWarning) as caught:
        import nima_lessons.exercises  # noqa: F401
    assert caught[0].filename == __file__


def test_moved_readers_and_renamed_dataset_check():
    from nima_lessons import io
    from nima_lessons.course import readers, synthetic

    with pytest.warns(
        DeprecationWarning,
        match=r"nima_lessons.io.lazy_imread has moved to nima_lessons.course.readers",
    ):
        from nima_lessons.io import lazy_imread
    assert lazy_imread is readers.lazy_imread
    with pytest.warns(DeprecationWarning, match="is_dataset_complete"):
        assert synthetic.is_complete is synthetic.is_dataset_complete
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        io.nope  # noqa: B018


def test_old_path_works_in_a_fresh_interpreter():
    probe = "import warnings; warnings.simplefilter('error'); import nima_lessons.synthetic"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert (
        done.returncode == 1
        and "DeprecationWarning: nima_lessons.synthetic has moved" in done.stderr
    )
    probe = "import nima_lessons.synthetic as s; print(s.__name__)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "nima_lessons.course.synthetic"
