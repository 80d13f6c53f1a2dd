"""The conda environment and the pip metadata declare the same dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# conda-forge names that differ from the PyPI ones.
CONDA_TO_PIP = {"netcdf4": "netcdf4"}


def normalise(requirement: str) -> tuple[str, str]:
    """Split a requirement into a canonical name and its version specifier."""
    match = re.match(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)", requirement)
    assert match, f"cannot parse requirement {requirement!r}"
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return CONDA_TO_PIP.get(name, name), match.group(3).replace(" ", "")


def pyproject_dependencies() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(normalise(req) for req in meta["project"]["dependencies"])


def conda_dependencies() -> dict[str, str]:
    """Parse the plain list under ``dependencies:`` of environment.yml."""
    deps = {}
    in_list = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_list = True
            continue
        if in_list and re.match(r"^  - [^{]", line) and not line.strip().endswith(":"):
            deps.update([normalise(line.strip()[2:])])
        elif in_list and line and not line.startswith(" "):
            in_list = False
    for tool in ("python", "pip"):
        deps.pop(tool, None)
    return deps


def test_environment_matches_pyproject():
    assert conda_dependencies() == pyproject_dependencies()


def test_constraints_pin_every_direct_dependency():
    pins = {
        normalise(line.split("==")[0])[0]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    missing = set(pyproject_dependencies()) - pins
    assert not missing, f"constraints.txt lacks pins for {sorted(missing)}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme
    assert re.search(r"^make test\s*$", ci, flags=re.MULTILINE)
