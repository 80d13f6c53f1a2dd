"""Lesson pages of the website: the notebooks as readers see them, and the command-line help.

Before Sphinx reads anything, every lesson ``notebooks/[0-9]*.ipynb`` is copied to
``docs/notebooks/`` (git-ignored) as the page will show it: exercise solutions collapsed (a
``# %load solutions/NAME.py`` cell gets the file's code, as running it in Jupyter would),
``NBVAL_*`` markers dropped, interactive viewers (which need a kernel) replaced by a short
note, and a stored error output reported as a build warning (the lessons are not executed
here, so myst-nb cannot see errors itself). Each lesson page then gets a "Run this lesson"
note linking to Binder and to the set-up page, and the lesson names in the home page's
table become links.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlparse

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: Folder of the rendered copies, inside the Sphinx source folder; pages are notebooks/NAME.
LESSON_FOLDER = "notebooks"
#: Lessons are the notebooks whose names start with a digit, as in the Makefile.
LESSON_PATTERN = "[0-9]*.ipynb"
#: A cell that loads an exercise solution from a file (a commented magic, run on demand).
LOAD_SOLUTION = re.compile(r"^(?:#\s*)?%load\s+(?P<path>(?:\./)?solutions/\S+\.py)\s*$")
#: Comment lines that only steer nbval; they mean nothing to a reader.
NBVAL_MARKER = re.compile(r"^\s*#\s*NBVAL_[A-Z_]+\s*$")
#: The output of an interactive widget: a reference to live state that a static page lacks.
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: What a page shows where the notebook shows an interactive viewer.
WIDGET_NOTE = (
    '<div class="lesson-widget"><p><strong>Interactive viewer.</strong> It works in a running '
    "notebook (Binder or <code>make lab</code>); a still picture of it follows.</p></div>"
)
#: How the toggles of a folded solution, and of the check that follows it, read.
SOLUTION_PROMPTS = {
    "code_prompt_show": "Show the solution",
    "code_prompt_hide": "Hide the solution",
}
CHECK_PROMPTS = {
    "code_prompt_show": "Show the check of the solution",
    "code_prompt_hide": "Hide the check of the solution",
}


def lesson_notebooks(source: Path) -> list[Path]:
    """Return the lesson notebooks of ``source`` in teaching order (by file name)."""
    return sorted(source.glob(LESSON_PATTERN))


def error_outputs(notebook: dict) -> list[tuple[int, str]]:
    """Return ``(cell number, error name)`` for every stored error output (cells count from 1)."""
    found = []
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append((number, f"{output.get('ename', '?')}: {output.get('evalue', '')}"))
    return found


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _add_tag(cell: dict, tag: str) -> None:
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    # A cell already hidden or removed by its author keeps the author's choice.
    if not any(t.startswith(("hide-", "remove-")) for t in tags):
        tags.append(tag)


def is_solution(cell: dict) -> bool:
    """Whether a code cell holds (or loads) an exercise solution."""
    if cell.get("cell_type") != "code":
        return False
    lines = _source(cell).splitlines()
    tags = cell.get("metadata", {}).get("tags", [])
    return "solution" in tags or bool(lines and LOAD_SOLUTION.match(lines[0]))


def replace_widgets(cell: dict) -> None:
    """Put the widget note in place of every interactive widget output of ``cell``."""
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if WIDGET_MIME in data:
            output["data"] = {"text/html": WIDGET_NOTE, "text/plain": "interactive viewer"}


def _clean_source(cell: dict, folder: Path) -> str | None:
    """Drop nbval markers and load a ``%load`` solution's code; return a problem, if any."""
    lines = [line for line in _source(cell).splitlines() if not NBVAL_MARKER.match(line)]
    while lines and not lines[0].strip():
        lines.pop(0)
    problem = None
    load = LOAD_SOLUTION.match(lines[0]) if lines else None
    if load and not any(line.strip() for line in lines[1:]):
        solution = folder / load["path"]
        if solution.is_file():
            lines += solution.read_text(encoding="utf-8").rstrip("\n").splitlines()
        else:
            problem = f"loads {load['path']}, which does not exist"
    cell["source"] = "\n".join(lines)
    return problem


def prepare_lesson(notebook: dict, folder: Path) -> list[str]:
    """Turn a lesson notebook into its page version, in place; return the problems found.

    A solution cell is folded whole. So is the output of the cell right after it when that
    cell repeats an earlier one (the exercise's checker), since its verdict gives the answer.

    Parameters
    ----------
    notebook : dict
        The notebook as read from JSON.
    folder : pathlib.Path
        The folder of the notebook, where ``# %load`` paths start.

    Returns
    -------
    list of str
        One message per cell whose solution file is missing.
    """
    problems = []
    # Without widget state myst-nb loads no widget scripts; the viewers are notes now.
    notebook.get("metadata", {}).pop("widgets", None)
    earlier, after_solution = set(), False
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            after_solution = False
            continue
        replace_widgets(cell)
        if problem := _clean_source(cell, folder):
            problems.append(f"cell {number} {problem}")
        metadata = cell.setdefault("metadata", {})
        solution = is_solution(cell)
        if solution:
            tags = metadata.setdefault("tags", [])
            tags.extend([] if "solution" in tags else ["solution"])
            _add_tag(cell, "hide-cell")
            metadata.setdefault("mystnb", {}).update(SOLUTION_PROMPTS)
        elif after_solution and cell["source"] in earlier:
            _add_tag(cell, "hide-output")
            metadata.setdefault("mystnb", {}).update(CHECK_PROMPTS)
        elif metadata.get("jupyter", {}).get("source_hidden"):
            _add_tag(cell, "hide-input")
        if metadata.get("jupyter", {}).get("outputs_hidden"):
            _add_tag(cell, "hide-output")
        earlier.add(cell["source"])
        after_solution = solution
    return problems


def _write_if_changed(path: Path, text: str) -> None:
    # An unchanged copy keeps its time stamp, so Sphinx does not read the page again.
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def copy_lessons(app: Sphinx) -> None:
    """Write the page version of every lesson to ``docs/notebooks/`` and drop stale ones."""
    source = Path(app.config.lessons_source)
    target = Path(app.srcdir) / LESSON_FOLDER
    target.mkdir(exist_ok=True)
    lessons = lesson_notebooks(source)
    if not lessons:
        logger.warning(f"no lesson notebooks {LESSON_PATTERN} in {source}", type="lessons")
    for path in lessons:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        # Sphinx takes a string location for a page name, so the path goes in the message.
        for number, error in error_outputs(notebook):
            logger.warning(
                f"{path}: cell {number} holds an error output ({error}); run "
                "`make notebooks` and commit the fixed notebook",
                type="lessons",
            )
        for problem in prepare_lesson(notebook, path.parent):
            logger.warning(f"{path}: {problem}", type="lessons")
        text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
        _write_if_changed(target / path.name, text)
    wanted = {path.name for path in lessons}
    for stale in target.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()


def binder_url(repository_url: str, branch: str, path: str, binderhub_url: str) -> str:
    """Return the Binder link that opens ``path`` of the repository in JupyterLab.

    Examples
    --------
    >>> binder_url("https://github.com/me/nima-lessons", "main", "notebooks/a.ipynb",
    ...            "https://mybinder.org")
    'https://mybinder.org/v2/gh/me/nima-lessons/main?urlpath=lab/tree/notebooks/a.ipynb'
    """
    parts = urlparse(repository_url)
    owner_repo = parts.path.strip("/").removesuffix(".git")
    if parts.netloc == "github.com" and owner_repo.count("/") == 1:
        spec = f"gh/{owner_repo}"
    else:
        spec = f"git/{quote(repository_url, safe='')}"
    return f"{binderhub_url.rstrip('/')}/v2/{spec}/{branch}?urlpath=lab/tree/{path}"


def _doc_link(text: str, target: str, docname: str) -> addnodes.pending_xref:
    link = addnodes.pending_xref(
        "", refdomain="std", reftype="doc", reftarget=target, refexplicit=True, refdoc=docname
    )
    link += nodes.inline(text, text)
    return link


def run_note(app: Sphinx, docname: str) -> nodes.admonition:
    """The "Run this lesson" box: Binder, or ``make lab`` on the reader's machine."""
    name = Path(docname).name + ".ipynb"
    config = app.config
    url = binder_url(
        config.lessons_repository_url,
        config.lessons_repository_branch,
        f"{LESSON_FOLDER}/{name}",
        config.lessons_binderhub_url,
    )
    note = nodes.admonition(classes=["tip", "run-lesson"])
    note += nodes.title("", "Run this lesson")
    text = nodes.paragraph()
    text += nodes.reference("", "Launch it on Binder", refuri=url)
    text += nodes.Text(" (in the browser, nothing to install), or run ")
    text += nodes.literal("", "make lab")
    text += nodes.Text(" in a clone of the repository and open ")
    text += nodes.literal("", name)
    text += nodes.Text(" (")
    text += _doc_link("set-up", "/setup", docname)
    text += nodes.Text("). This page shows the outputs stored in the notebook.")
    note += text
    return note


def add_run_note(app: Sphinx, doctree: nodes.document) -> None:
    """Put the run note under the title of every lesson page."""
    docname = app.env.docname
    if not docname.startswith(f"{LESSON_FOLDER}/"):
        return
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        logger.warning("a lesson page without a title", location=docname, type="lessons")
        return
    section.insert(1, run_note(app, docname))


def link_lesson_names(app: Sphinx, doctree: nodes.document) -> None:
    """Turn a lesson's file name in a table of the home page (``01_...``) into its title, linked."""
    if app.env.docname != app.config.root_doc:
        return
    lessons = {path.stem for path in (Path(app.srcdir) / LESSON_FOLDER).glob(LESSON_PATTERN)}
    for table in doctree.findall(nodes.table):
        for literal in list(table.findall(nodes.literal)):
            name = literal.astext()
            if name in lessons:
                link = _doc_link(name, f"/{LESSON_FOLDER}/{name}", app.env.docname)
                link["refexplicit"] = False  # Sphinx writes the lesson's title
                literal.replace_self(link)


@contextmanager
def _terminal_width(columns: int):
    # argparse wraps its help to the terminal width, read from COLUMNS.
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(columns)
    try:
        yield
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


class CommandHelp(Directive):
    """``command-help [SUBCOMMAND...]``: the help text of ``nima-lessons [SUBCOMMAND...]``."""

    optional_arguments = 3

    def run(self) -> list[nodes.Node]:
        """Render the help text as a literal block, under the command that prints it.

        Returns
        -------
        list of docutils.nodes.Node
            One ``literal_block`` holding ``$ nima-lessons ... --help`` and its output.

        Raises
        ------
        ValueError
            If a word of the directive is not a subcommand at that level.
        """
        from nima_lessons.cli import build_parser

        with _terminal_width(78):
            parser = build_parser()
            for word in self.arguments:
                parser = _subparser(parser, word)
            text = parser.format_help()
        command = " ".join(["nima-lessons", *self.arguments, "--help"])
        return [nodes.literal_block(text, f"$ {command}\n{text}", language="text")]


def _subparser(parser, word: str):
    for action in parser._actions:  # argparse offers no public way to reach subparsers
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict) and word in choices:
            return choices[word]
    raise ValueError(f"nima-lessons has no subcommand {word!r} under {parser.prog!r}")


def setup(app: Sphinx) -> dict[str, object]:
    """Register the lesson options, the page hooks and ``command-help`` with Sphinx.

    Parameters
    ----------
    app : sphinx.application.Sphinx
        The application being set up.

    Returns
    -------
    dict
        The extension's version and its parallel-safety flags.
    """
    app.add_config_value("lessons_source", "../notebooks", "env", str)
    app.add_config_value("lessons_repository_url", "", "env", str)
    app.add_config_value("lessons_repository_branch", "main", "env", str)
    app.add_config_value("lessons_binderhub_url", "https://mybinder.org", "env", str)
    app.connect("builder-inited", copy_lessons)
    app.connect("doctree-read", add_run_note)
    app.connect("doctree-read", link_lesson_names)
    app.add_directive("command-help", CommandHelp)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
