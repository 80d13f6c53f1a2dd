"""The website checked as a reader would meet it: links, pictures, lessons, solutions.

``make docs`` builds ``docs/_build/html`` and runs this file on it. Without a built site the
site checks are skipped (``make docs`` sets NIMA_LESSONS_DOCS_REQUIRED=1, which turns the
skip into a failure). Where Chromium is installed, the home page and a lesson are also
opened in a real browser and saved as screenshots in ``docs/_build/screenshots/``.
"""

from __future__ import annotations

import importlib.util
import os
import pkgutil
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The site `make docs` builds; another built copy can be checked by naming it here.
SITE = Path(os.environ.get("NIMA_LESSONS_DOCS_SITE", ROOT / "docs" / "_build" / "html"))
SCREENSHOTS = SITE.parent / "screenshots"
NOTEBOOKS = ROOT / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
SOLUTIONS = sorted((NOTEBOOKS / "solutions").glob("*.py"))
REQUIRED_ENV = "NIMA_LESSONS_DOCS_REQUIRED"
BINDER_PREFIX = "https://mybinder.org/v2/"
CORE_MODULES = ("io", "pipeline", "store", "labels", "tiling", "counting", "cluster", "config")
# README sections shown as pages: page -> the README heading the page starts after.
README_PAGES = {
    "setup.html": "## Quick start",
    "data.html": "## Data",
    "pipeline.html": "### Reading and the lazy nima pipeline",
    "tiling.html": "### Tiles: overlap, labels and counts",
    "benchmarks.html": "## Measuring performance on your machine",
    "cluster.html": "## Running on a cluster, and saving that survives interruptions",
}
LINK_ATTRIBUTES = (("a", "href"), ("link", "href"), ("img", "src"), ("script", "src"))
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


# -- the built site ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site() -> dict:
    """Every HTML page of the built site, parsed, by path relative to the site root."""
    if not (SITE / "index.html").is_file():
        message = f"the website is not built ({SITE}): `make docs` builds and checks it"
        if os.environ.get(REQUIRED_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    bs4 = pytest.importorskip("bs4", reason="beautifulsoup4 (the docs extra) reads the pages")
    pages = {}
    for path in sorted(SITE.rglob("*.html")):
        relative = path.relative_to(SITE).as_posix()
        if not relative.startswith(("_static/", "_sources/")):
            pages[relative] = bs4.BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    return pages


def lesson_page(name: str) -> str:
    return f"notebooks/{name}.html"


@pytest.fixture(scope="module")
def lessons(site) -> dict:
    """The article of each lesson page, by lesson name, in teaching order."""
    missing = [path.stem for path in LESSONS if lesson_page(path.stem) not in site]
    assert not missing, (
        f"no page for lessons {missing}: the site is older than notebooks/, run `make docs`"
    )
    articles = {}
    for path in LESSONS:
        article = site[lesson_page(path.stem)].select_one("article")
        assert article is not None, (
            f"{lesson_page(path.stem)} has no <article>: page layout changed?"
        )
        articles[path.stem] = article
    return articles


def test_a_page_per_lesson_and_no_other(site):
    assert LESSONS, "no lesson notebooks/[0-9]*.ipynb"
    pages = {name for name in site if name.startswith("notebooks/")}
    expected = {lesson_page(path.stem) for path in LESSONS}
    assert pages == expected, (
        f"lesson pages {sorted(pages)} differ from the notebooks {sorted(expected)}: "
        "the site is stale, run `make docs`"
    )


def _local_target(page: str, url: str) -> tuple[Path, str] | None:
    """The file and fragment a link of ``page`` points to, or None for another site."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None
    path = unquote(parts.path)
    target = SITE / page if not path else (SITE / page).parent / path
    target = Path(os.path.normpath(target))
    if target.is_dir():
        target = target / "index.html"
    return target, unquote(parts.fragment)


def _anchors(soup) -> set[str]:
    return {tag["id"] for tag in soup.find_all(id=True)} | {
        tag["name"] for tag in soup.find_all("a", attrs={"name": True})
    }


def test_internal_links_and_files_resolve(site):
    anchors = {page: _anchors(soup) for page, soup in site.items()}
    dead = []
    for page, soup in site.items():
        for tag, attribute in LINK_ATTRIBUTES:
            for element in soup.find_all(tag, attrs={attribute: True}):
                url = element[attribute]
                local = _local_target(page, url)
                if local is None:
                    continue
                target, fragment = local
                inside = target.is_relative_to(SITE)
                if not inside or not target.is_file():
                    dead.append(f"{page}: <{tag} {attribute}={url!r}> (no such file)")
                    continue
                relative = target.relative_to(SITE).as_posix()
                if fragment and relative in anchors and fragment not in anchors[relative]:
                    dead.append(f"{page}: <{tag} {attribute}={url!r}> (no #{fragment} there)")
    assert not dead, f"{len(dead)} dead internal links:\n" + "\n".join(sorted(set(dead))[:40])


def test_every_image_is_a_picture(site):
    from PIL import Image

    checked, broken = set(), []
    for page, soup in site.items():
        for image in soup.find_all("img", src=True):
            local = _local_target(page, image["src"])
            if local is None or local[0] in checked:
                continue
            path = local[0]
            checked.add(path)
            if not path.is_file() or path.stat().st_size == 0:
                broken.append(f"{page}: {image['src']} is missing or empty")
            elif path.suffix.lower() != ".svg":
                with Image.open(path) as picture:
                    if min(picture.size) < 2:
                        broken.append(f"{page}: {image['src']} is {picture.size} pixels")
    assert checked, "the site shows no image at all"
    assert not broken, "\n".join(broken)


def _words(element) -> int:
    return sum(len(p.get_text(" ", strip=True).split()) for p in element.find_all("p"))


def _output_pictures(element) -> list:
    return [img for img in element.find_all("img") if img.find_parent(class_="cell_output")]


def test_lesson_pages_have_text_code_and_figures(lessons):
    problems = []
    for name, article in lessons.items():
        title = article.find("h1")
        if title is None or not title.get_text(strip=True):
            problems.append(f"{name}: no title")
        if _words(article) < 100:
            problems.append(f"{name}: only {_words(article)} words of text")
        if not article.select("div.cell div.cell_input"):
            problems.append(f"{name}: no code cell")
        if not _output_pictures(article):
            problems.append(f"{name}: no figure among the outputs (a lesson shows its results)")
    assert not problems, "lesson pages incomplete:\n" + "\n".join(problems)


def _is_viewer(element) -> bool:
    classes = element.get("class") or []
    return "lesson-widget" in classes or (
        element.name == "script"
        and element.get("type") == "application/vnd.jupyter.widget-view+json"
    )


def test_every_viewer_is_followed_by_a_still_picture(lessons):
    """A live widget shows nothing on a static page: a picture of it must follow in its section."""
    missing = []
    for name, article in lessons.items():
        waiting, heading = None, "(top)"
        for element in article.find_all(True):
            if re.fullmatch(r"h[1-6]", element.name):
                if waiting:
                    missing.append(f"{name}: the viewer in section {waiting!r}")
                waiting, heading = None, element.get_text(" ", strip=True).rstrip("#").strip()
            elif _is_viewer(element):
                if waiting:
                    missing.append(f"{name}: the viewer in section {waiting!r}")
                waiting = heading
            elif element.name == "img" and element.find_parent(class_="cell_output"):
                waiting = None
        if waiting:
            missing.append(f"{name}: the viewer in section {waiting!r}")
    assert not missing, (
        "interactive viewers without a static picture after them (before the next heading):\n"
        + "\n".join(missing)
    )


def test_no_lesson_shows_an_error(lessons):
    errors = [
        f"{name}: {block.get_text(' ', strip=True)[:120]}"
        for name, article in lessons.items()
        for block in article.select("div.cell_output .traceback")
    ]
    assert not errors, "error outputs on lesson pages (run `make notebooks`):\n" + "\n".join(errors)


def _hidden(element) -> bool:
    """Whether a reader has to click to see ``element`` (inside a closed <details>)."""
    return any(not details.has_attr("open") for details in element.find_parents("details"))


def _code_lines(text: str) -> list[str]:
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_exercise_solutions_need_a_click(lessons):
    solutions = {path.name: _code_lines(path.read_text(encoding="utf-8")) for path in SOLUTIONS}
    shown = []
    for name, article in lessons.items():
        inputs = [cell.select_one("div.cell_input") for cell in article.select("div.cell")]
        earlier = [part.get_text() for part in inputs if part is not None]
        for cell in article.select("div.cell.tag_solution"):
            for part in cell.select("div.cell_input, div.cell_output"):
                if not _hidden(part):
                    shown.append(f"{name}: a cell tagged 'solution' shows its {part['class'][0]}")
            # The exercise's checker run again after the solution states the answer.
            check = cell.find_next("div", class_="cell")
            source = check.select_one("div.cell_input") if check else None
            repeated = source is not None and earlier.count(source.get_text()) > 1
            if repeated and any(not _hidden(out) for out in check.select("div.cell_output")):
                shown.append(f"{name}: the check after a solution shows its verdict")
        for block in article.select("div.cell_input pre"):
            if _hidden(block):
                continue
            text = block.get_text()
            lines = _code_lines(text)
            loaded = [line for line in lines if not line.startswith("%load ")]
            if re.search(r"^(#\s*)?%load\s+(\./)?solutions/", text, flags=re.MULTILINE) and loaded:
                shown.append(f"{name}: a loaded solution shows its code: {loaded[0]!r}")
            for file, code in solutions.items():
                if code and all(line in lines for line in code):
                    shown.append(f"{name}: the code of solutions/{file} is visible")
    assert not shown, "exercise solutions visible without a click:\n" + "\n".join(shown)


def test_every_lesson_says_how_to_run_it(lessons):
    problems = []
    for name, article in lessons.items():
        links = {
            a["href"]
            for a in article.find_all("a", href=True)
            if a["href"].startswith(BINDER_PREFIX)
        }
        page = article.find_parent("html")
        buttons = {
            a["href"] for a in page.find_all("a", href=True) if a["href"].startswith(BINDER_PREFIX)
        }
        if not links:
            problems.append(f"{name}: no Binder link in the page text")
        elif not all(link.endswith(f"urlpath=lab/tree/notebooks/{name}.ipynb") for link in links):
            problems.append(
                f"{name}: Binder links {sorted(links)} do not open notebooks/{name}.ipynb"
            )
        elif buttons != links:
            # The theme's launch button builds its own link: both must agree.
            problems.append(f"{name}: the page's Binder links disagree: {sorted(buttons)}")
        if "make lab" not in " ".join(article.get_text(" ").split()):
            problems.append(f"{name}: does not say `make lab`")
    assert not problems, "\n".join(problems)


def test_the_instructor_schedule_covers_every_lesson(site):
    links = {a["href"].split("#")[0] for a in site["instructors.html"].find_all("a", href=True)}
    text = site["instructors.html"].get_text(" ").lower()
    missing = [path.stem for path in LESSONS if lesson_page(path.stem) not in links]
    assert not missing, (
        f"lessons missing from the instructor schedule (docs/instructors.md): {missing}"
    )
    assert "break" in text and "lunch" in text, "the schedule has no breaks"


def _public_modules() -> set[str]:
    import nima_lessons
    import nima_lessons.course

    found = set()
    for package in (nima_lessons, nima_lessons.course):
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_") and module.name not in ("cli", "course"):
                found.add(f"{package.__name__}.{module.name}")
    return found


def test_the_reference_documents_both_floors(site):
    index = site["api/index.html"]
    sections = {
        section.get("id"): {a.get_text(strip=True) for a in section.select("a.reference.internal")}
        for section in index.select("section section")
    }
    core, course = sections.get("analysis-core", set()), sections.get("course-layer", set())
    assert {f"nima_lessons.{name}" for name in CORE_MODULES} <= core, (
        f"core section lists {sorted(core)}"
    )
    assert course and all(name.startswith("nima_lessons.course.") for name in course), sorted(
        course
    )
    assert not any(name.startswith("nima_lessons.course") for name in core), sorted(core)
    undocumented = []
    for module in sorted(_public_modules()):
        page = site.get(f"api/generated/{module}.html")
        if page is None or not page.select("dl.py"):
            undocumented.append(module)
    assert not undocumented, (
        f"public modules without a reference page (docs/api/index.md): {undocumented}"
    )


def _plain(markdown: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"[`*]", "", text)


def _normal(text: str) -> str:
    for fancy, plain in (
        ("\u2019", "'"),
        ("\u2018", "'"),
        ("\u201c", '"'),
        ("\u201d", '"'),
        ("\u2013", "--"),
    ):
        text = text.replace(fancy, plain)
    return " ".join(text.split())


def test_readme_sections_are_pages(site):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    problems = []
    for page, heading in README_PAGES.items():
        assert heading in readme, f"README.md has no heading {heading!r} for {page}"
        body = readme.split(heading, 1)[1].splitlines()
        prose = next(line for line in body if re.match(r"[A-Za-z*`]", line.strip()))
        start = " ".join(_plain(prose).split()[:6])
        if _normal(start) not in _normal(site[page].get_text(" ")):
            problems.append(f"{page} does not show README's {heading!r} (looked for {start!r})")
    assert not problems, "\n".join(problems)


# -- a real browser ---------------------------------------------------------------------------


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _screenshot(browser: str, page: Path, out: Path, height: int) -> None:
    command = [
        browser,
        "--headless",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size=1280,{height}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    command += [f"--screenshot={out}", page.as_uri()]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


@pytest.mark.parametrize("which", ["index", "lesson"])
def test_pages_render_in_a_browser(site, which):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium): no screenshots taken")
    from PIL import Image, ImageStat

    page = SITE / (
        "index.html" if which == "index" else lesson_page(LESSONS[min(1, len(LESSONS) - 1)].stem)
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOTS / f"{which}.png"
    out.unlink(missing_ok=True)
    _screenshot(browser, page, out, height=1800 if which == "index" else 2400)
    with Image.open(out) as shot:
        assert shot.width == 1280
        spread = ImageStat.Stat(shot.convert("L")).stddev[0]
    assert spread > 10, f"{out} is almost uniform (stddev {spread:.1f}): the page did not render"


# -- the build step that prepares lesson pages ---------------------------------------------------


@pytest.fixture(scope="module")
def lesson_pages():
    pytest.importorskip("sphinx", reason="Sphinx (the docs extra) is not installed")
    spec = importlib.util.spec_from_file_location(
        "lesson_pages", ROOT / "docs" / "_ext" / "lesson_pages.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _notebook(*cells):
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=list(cells))
    nbformat.validate(notebook)
    return nbformat.from_dict(notebook)


def test_prepare_lesson_folds_solutions_and_loads_their_code(lesson_pages, tmp_path):
    import nbformat

    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "answer.py").write_text("answer = 6 * 7\nprint(answer)\n")
    tagged = nbformat.v4.new_code_cell("answer = 42", metadata={"tags": ["solution"]})
    loaded = nbformat.v4.new_code_cell("# %load solutions/answer.py")
    missing = nbformat.v4.new_code_cell("# %load solutions/nothing.py")
    plain = nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nx = 1")
    notebook = _notebook(tagged, loaded, missing, plain)

    problems = lesson_pages.prepare_lesson(notebook, tmp_path)

    cells = notebook["cells"]
    assert cells[1]["source"] == "# %load solutions/answer.py\nanswer = 6 * 7\nprint(answer)"
    hidden = [("hide-cell" in cell["metadata"].get("tags", [])) for cell in cells]
    assert hidden == [True, True, True, False]
    assert all("solution" in cell["metadata"]["tags"] for cell in cells[:3])
    assert cells[3]["source"] == "x = 1"
    assert problems == ["cell 3 loads solutions/nothing.py, which does not exist"]
    nbformat.validate(nbformat.from_dict(notebook))


def test_prepare_lesson_replaces_widgets_and_error_outputs_are_found(lesson_pages, tmp_path):
    import nbformat

    widget = nbformat.v4.new_output(
        "display_data",
        data={
            "application/vnd.jupyter.widget-view+json": {
                "model_id": "x",
                "version_major": 2,
                "version_minor": 0,
            },
            "text/plain": "VBox()",
        },
    )
    error = nbformat.v4.new_output(
        "error", ename="ValueError", evalue="bad", traceback=["ValueError: bad"]
    )
    notebook = _notebook(
        nbformat.v4.new_code_cell("viewer", outputs=[widget]),
        nbformat.v4.new_code_cell("1 / 0", outputs=[error]),
    )
    notebook["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}

    lesson_pages.prepare_lesson(notebook, tmp_path)

    assert "widgets" not in notebook["metadata"]
    assert 'class="lesson-widget"' in notebook["cells"][0]["outputs"][0]["data"]["text/html"]
    assert lesson_pages.error_outputs(notebook) == [(2, "ValueError: bad")]


def test_prepare_lesson_folds_the_verdict_after_a_solution(lesson_pages, tmp_path):
    import nbformat

    check = "exercises.check(answer)"
    notebook = _notebook(
        nbformat.v4.new_code_cell(check),
        nbformat.v4.new_code_cell("answer = 42", metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell(check),
        nbformat.v4.new_code_cell(check),
    )

    lesson_pages.prepare_lesson(notebook, tmp_path)

    tags = [cell["metadata"].get("tags", []) for cell in notebook["cells"]]
    assert tags == [[], ["solution", "hide-cell"], ["hide-output"], []]


def test_lesson_pages_examples(lesson_pages):
    import doctest

    result = doctest.testmod(lesson_pages)
    assert result.attempted and not result.failed
