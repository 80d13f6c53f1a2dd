"""Sphinx configuration of the nima-lessons website: the lessons and the package reference.

Build it with ``make docs`` (warnings are errors); the lessons are rendered from the outputs
stored in ``notebooks/*.ipynb`` and are never executed here.
"""

from __future__ import annotations

import builtins
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

# -- Where the lessons can be launched --------------------------------------------------------
# The repository that Binder builds the lessons from (it reads environment.yml there). Set it
# to the public address of your copy of the repository, here or in the environment variable.
REPOSITORY_URL = os.environ.get(
    "NIMA_LESSONS_REPOSITORY_URL", "https://github.com/your-account/nima-lessons"
)
REPOSITORY_BRANCH = os.environ.get("NIMA_LESSONS_REPOSITORY_BRANCH", "main")
BINDERHUB_URL = "https://mybinder.org"

# -- Project ---------------------------------------------------------------------------------
project = "nima-lessons"
author = "the nima-lessons authors"
copyright = "the nima-lessons authors, BSD 3-Clause"
from nima_lessons import __version__  # noqa: E402  (the package's one version)

version = release = __version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "lesson_pages",
]

exclude_patterns = ["_build", "_ext", "_templates", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
root_doc = "index"
# Every reference to this project's names must resolve, short ones included (`read_image`
# means the name in scope where it is written). Other projects' dotted names (numpy.ndarray,
# xarray.DataArray...) and builtins are not linked: the build runs without their inventories.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!nima_lessons\.)\w+\..+"),
    (r"py:.*", "|".join(name for name in dir(builtins) if not name.startswith("_"))),
]

# -- Lessons (myst-nb) -----------------------------------------------------------------------
# nbval executes every notebook in CI; the site shows the outputs stored in them.
nb_execution_mode = "off"
nb_merge_streams = True
nb_output_stderr = "show"
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# The lesson_pages extension copies notebooks/[0-9]*.ipynb to docs/notebooks/ before reading.
lessons_source = str(ROOT / "notebooks")
lessons_repository_url = REPOSITORY_URL
lessons_repository_branch = REPOSITORY_BRANCH
lessons_binderhub_url = BINDERHUB_URL

# -- Package reference -----------------------------------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False  # document exactly a module's __all__ where it has one
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc sections give the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- HTML ------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "nima-lessons"
html_static_path = ["_static"]
html_css_files = ["lessons.css"]
html_last_updated_fmt = None
html_show_sourcelink = False
html_theme_options = {
    "repository_url": REPOSITORY_URL,
    "repository_branch": REPOSITORY_BRANCH,
    # Lesson pages are docs/notebooks/NAME, the notebooks notebooks/NAME in the repository:
    # with an empty path the launch buttons point at the notebooks themselves.
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "launch_buttons": {"binderhub_url": BINDERHUB_URL, "notebook_interface": "jupyterlab"},
    "navbar_persistent": [],  # the sidebar has the search field already
    "show_toc_level": 2,
    "home_page_in_toc": True,
}
