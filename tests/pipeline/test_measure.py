"""Per-cell measurements against skimage.measure.regionprops_table."""

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage as ndi
import skimage.measure
import xarray as xr

from nima_lessons.pipeline import measure


def make_data(rng, n_t=3):
    labels = np.zeros((n_t, 1, 20, 24), np.int32)
    labels[:, :, 2:8, 3:9] = 1
    labels[:, :, 12:18, 10:20] = 4
    labels[1, :, 2:8, 3:9] = 0  # cell 1 missing at T=1
    image = rng.uniform(10.0, 1000.0, (n_t, 3, 1, 20, 24))
    im = xr.DataArray(image, dims=("T", "C", "Z", "Y", "X"), coords={"C": ["G", "R", "C"]})
    return im, xr.DataArray(labels, dims=("T", "Z", "Y", "X"))


def test_table_matches_regionprops():
    im, labels = make_data(np.random.default_rng(0))
    table = measure(im.chunk({"T": 1, "C": 1}), labels.chunk({"T": 1}))
    assert list(table.columns) == ["T", "label", "area", "mean_G", "mean_R", "mean_C", "ratio"]
    rows = []
    for t in range(3):
        props = skimage.measure.regionprops_table(
            labels.values[t, 0],
            intensity_image=np.moveaxis(im.values[t, :, 0], 0, -1),
            properties=("label", "area", "intensity_mean"),
        )
        frame = pd.DataFrame(props).assign(T=t)
        rows.append(frame)
    expected = pd.concat(rows, ignore_index=True)
    assert table["T"].tolist() == expected["T"].tolist()
    assert table["label"].tolist() == expected["label"].tolist()
    np.testing.assert_array_equal(table["area"], expected["area"])
    for index, name in enumerate("GRC"):
        np.testing.assert_allclose(table[f"mean_{name}"], expected[f"intensity_mean-{index}"])
    np.testing.assert_allclose(
        table["ratio"], expected["intensity_mean-0"] / expected["intensity_mean-2"]
    )


def test_z_planes_are_measured_apart():
    rng = np.random.default_rng(3)
    image = rng.uniform(1.0, 9.0, (1, 2, 2, 6, 6))
    labels = np.zeros((1, 2, 6, 6), np.int32)
    labels[0, 0, :3] = 1  # label 1 of Z=0 and label 1 of Z=1 are different cells
    labels[0, 1, 3:] = 1
    im = xr.DataArray(image, dims=("T", "C", "Z", "Y", "X"), coords={"C": ["G", "C"]})
    table = measure(im, xr.DataArray(labels, dims=("T", "Z", "Y", "X")))
    assert list(table.columns[:3]) == ["T", "Z", "label"]
    assert table["Z"].tolist() == [0, 1]
    expected = [image[0, 0, 0, :3].mean(), image[0, 0, 1, 3:].mean()]
    np.testing.assert_allclose(table["mean_G"], expected)


def test_empty_planes_give_no_rows():
    im, labels = make_data(np.random.default_rng(1))
    table = measure(im, labels * 0)
    assert len(table) == 0 and "ratio" in table.columns


def test_mismatched_labels_are_refused():
    im, labels = make_data(np.random.default_rng(2))
    with pytest.raises(ValueError, match="labels"):
        measure(im, labels.isel(T=slice(0, 2)))
    with pytest.raises(ValueError, match=r"\['Q'\]"):
        measure(im, labels, numerator="Q")


def test_ratio_image_medians_equal_scipy_medians_per_label():
    im, labels = make_data(np.random.default_rng(4))
    ratio_g_c = im.sel(C="G") / im.sel(C="C")
    ratio_c_r = (im.sel(C="C") / im.sel(C="R")).where(labels != 4)  # NaN inside cell 4
    table = measure(
        im.chunk({"T": 1, "C": 1}), labels.chunk({"T": 1}),
        ratio_image={"r_pH": ratio_g_c.chunk({"T": 1}), "r_cl": ratio_c_r},
        ratios={"r_cl": ("C", "R"), "r_pH": ("G", "C")},
    )  # fmt: skip
    assert list(table.columns[-4:]) == ["r_cl", "r_pH", "r_pH_median", "r_cl_median"]
    for _, row in table.iterrows():
        t, cell = int(row["T"]), int(row["label"])
        inside = labels.values[t, 0] == cell
        assert row["r_pH_median"] == pytest.approx(
            ndi.median(ratio_g_c.values[t, 0], labels.values[t, 0], cell)
        )
        expected_cl = np.nanmedian(ratio_c_r.values[t, 0][inside]) if cell != 4 else np.nan
        np.testing.assert_allclose(row["r_cl_median"], expected_cl)
        assert row["r_cl"] == pytest.approx(row["mean_C"] / row["mean_R"])


def test_single_ratio_image_gives_ratio_median():
    im, labels = make_data(np.random.default_rng(5))
    table = measure(im, labels, ratio_image=im.sel(C="G") / im.sel(C="C"))
    assert table.columns[-1] == "ratio_median"
    with pytest.raises(ValueError, match="ratio_image 'ratio_median'"):
        measure(im, labels, ratio_image=im.sel(C="G").isel(T=slice(0, 2)))
    with pytest.raises(TypeError, match="ratio_image"):
        measure(im, labels, ratio_image=np.zeros(3))
