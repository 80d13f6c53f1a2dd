"""The nima preset on nima's real sample against nima's own result tables.

The references are nima's: the tables shipped in nima 0.11.9's source distribution
(``nima 1b_c16_15.tif G R C`` reproduces them) and, for the background methods nima's
command line does not tabulate, the levels nima 0.11.9 computes (tests/data). The sample
is fetched once into the data folder; without access to the package index these tests
are skipped, saying so.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nima_lessons import io
from nima_lessons.course.nima_sample import (
    SDIST_NAME,
    SDIST_SHA256,
    NimaSampleUnavailable,
    _sha256,
    open_nima_sample,
)
from nima_lessons.course.synthetic import ensure_dataset
from nima_lessons.pipeline import PRESETS, background, measure, ratio, run_pipeline

pytestmark = pytest.mark.slow

NIMA_LEVELS = Path(__file__).parent.parent / "data" / "nima_0.11.9_background_levels.csv"


@pytest.fixture(scope="module")
def sample():
    try:
        folder = ensure_dataset("nima-sample")
    except NimaSampleUnavailable as error:
        pytest.skip(f"nima's sample could not be fetched: {error}")
    return open_nima_sample(folder)


@pytest.fixture(scope="module")
def result(sample):
    return run_pipeline(sample.image, config=PRESETS["nima"]).compute()


@pytest.fixture(scope="module")
def table(result):
    r_cl = ratio(result.image, "C", "R", mask=result.labels, median_sizes=(7, 3))
    return measure(
        result.image, result.labels,
        ratios={"r_cl": ("C", "R"), "r_pH": ("G", "C")},
        ratio_image={"r_cl": r_cl, "r_pH": result.ratio},
    )  # fmt: skip


def test_the_archive_has_the_recorded_hash(sample):
    archive = sample.folder.parent / "downloads" / SDIST_NAME
    assert _sha256(archive) == SDIST_SHA256


def test_background_within_two_counts_of_nima(result, sample):
    ours = result.background.isel(Z=0).to_pandas()[["G", "R", "C"]]
    difference = (ours - sample.background.to_numpy()).abs()
    assert difference.to_numpy().max() <= 2, f"ours - nima:\n{ours - sample.background}"


def test_exactly_nimas_cells_with_nimas_labels_at_every_time_point(table, sample):
    ours = table.groupby("T")["label"].apply(sorted).to_dict()
    nima = sample.cells.groupby("T")["label"].apply(sorted).to_dict()
    assert ours == nima  # {0: [1, 2, 3], 1: [1, 2, 3], 2: [1, 2], 3: [1, 2]}


@pytest.mark.parametrize(
    ("column", "tolerance"),
    [("area", 0.02), ("r_cl", 0.01), ("r_pH", 0.01), ("r_cl_median", 0.01),
     ("r_pH_median", 0.01)],
)  # fmt: skip
def test_cells_match_nimas_table(table, sample, column, tolerance):
    ours = table.set_index(["label", "T"])[column]
    nima = sample.cells.set_index(["label", "T"])[column]
    relative = (ours.reindex(nima.index) / nima - 1).abs()
    assert relative.max() <= tolerance, f"{column}: ours / nima - 1 =\n{relative}"


@pytest.mark.parametrize("method", ["li_li", "arcsinh", "adaptive", "entropy", "inverse_yen"])
def test_other_background_methods_match_nima(sample, method):
    reference = pd.read_csv(NIMA_LEVELS, comment="#")
    reference = reference[reference.method == method].pivot(index="T", columns="C", values="level")
    _, levels = background(sample.image, method)
    ours = levels.isel(Z=0).to_pandas()[reference.columns]
    assert (ours - reference).abs().to_numpy().max() <= 2, f"ours:\n{ours}\nnima:\n{reference}"


def test_each_plane_of_the_file_is_read_once(sample, monkeypatch):
    reads = collections.Counter()
    original = io._read_tiff_page

    def counting(source, key):
        reads[str(key)] += 1
        return original(source, key)

    monkeypatch.setattr(io, "_read_tiff_page", counting)
    image = io.read_image(sample.folder / "1b_c16_15.tif", channels={"0": "G", "1": "R", "2": "C"})
    lazy = run_pipeline(image, config=PRESETS["nima"])
    assert not reads
    lazy.compute()
    assert len(reads) == 12 and set(reads.values()) == {1}
    np.testing.assert_array_equal(image.values, sample.image.values)
