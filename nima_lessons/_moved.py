"""Old import paths that still work: modules and names that moved, each with a DeprecationWarning.

The course layer moved under :mod:`nima_lessons.course`; importing a module by its old
name returns the module at its new place (one module object, not a copy).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Mapping, Sequence
from types import ModuleType

__all__ = ["MOVED_MODULES", "install", "moved_attribute"]

#: Old module prefix -> new one (submodules follow: ``nima_lessons.bench.harness`` too).
MOVED_MODULES = {
    "nima_lessons.synthetic": "nima_lessons.course.synthetic",
    "nima_lessons.bench": "nima_lessons.course.bench",
    "nima_lessons.plotting": "nima_lessons.course.plotting",
    "nima_lessons.exercises": "nima_lessons.course.exercises",
}


def _new_name(fullname: str) -> str | None:
    for old, new in MOVED_MODULES.items():
        if fullname == old or fullname.startswith(old + "."):
            return new + fullname[len(old) :]
    return None


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers imports of an old module name with the module at its new place."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if _new_name(fullname) else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = _new_name(spec.name)
        assert new is not None  # find_spec answered only for moved names
        # stacklevel 2 skips the import machinery's frames: the warning names the importer.
        warnings.warn(
            f"{spec.name} has moved to {new}; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """The module at the new place is already executed."""


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once), before the finder of the old folders."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())


def moved_attribute(module: str, name: str, moved: Mapping[str, str]) -> object:
    """Return a name that moved out of ``module``, with a DeprecationWarning naming its new place.

    For a module's ``__getattr__``: ``moved`` maps old names to
    ``"new.module:new_name"``; any other name raises ``AttributeError`` as usual.
    """
    if name not in moved:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new_module, new_name = moved[name].split(":")
    warnings.warn(
        f"{module}.{name} has moved to {new_module}.{new_name}; import it from there",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(new_module), new_name)
