"""Case ``tiled_labels``: labelling large masks, tiled (ours, dask-image) or whole (scipy, ...).

Each labelling runs in a fresh process, so its peak resident memory is its own; the mask
is loaded from a ``.npy`` file before the baseline is taken.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

from nima_lessons.course import plotting
from nima_lessons.course.bench.case import Case, Context, Role, Trial, Trials, claim, presets
from nima_lessons.course.bench.harness import Work

__all__ = ["CASE", "blob_mask", "speed_claims"]

Labeller = Literal["nima_lessons", "dask_image", "scipy", "cc3d", "cv2"]
#: Who labels, their role, and the module an optional one needs.
LABELLERS: dict[Labeller, tuple[Role, tuple[str, ...]]] = {
    "scipy": ("reference", ()),
    "cc3d": ("anchor", ("cc3d",)),
    "cv2": ("anchor", ("cv2",)),
    "dask_image": ("anchor", ()),
    "nima_lessons": ("ours", ()),
}
#: The speed targets on the target mask: (mask side, chunk side), anchor -> least anchor / ours.
TARGET_SIZE = (8192, 1024)
TARGETS = {"dask_image": 10.0, "scipy": 1 / 3}


def blob_mask(size_px: int, blob_px: float = 12, fill: float = 0.3, seed: int = 0) -> np.ndarray:
    """Return a square boolean mask of random blobs, many of them crossing chunk borders.

    Smoothed white noise thresholded so that about ``fill`` of the pixels are foreground;
    blobs are about ``blob_px`` pixels across, with irregular outlines that join and split,
    the hard case for merging across tiles.

    Raises
    ------
    ValueError
        If ``fill`` is not a fraction in (0, 1).

    Examples
    --------
    >>> mask = blob_mask(64, blob_px=4, fill=0.3)
    >>> mask.shape, bool(0.2 < mask.mean() < 0.4)
    ((64, 64), True)
    """
    import scipy.ndimage as ndi

    if not 0 < fill < 1:
        raise ValueError(f"fill must be a fraction in (0, 1), got {fill}")
    noise = np.random.default_rng(seed).random((size_px, size_px), dtype=np.float32)
    smooth = ndi.gaussian_filter(noise, sigma=blob_px / 4, output=noise)
    # The threshold is taken on a sample: a quantile of 64 M pixels costs more than the smoothing.
    sample = smooth.ravel()[:: max(smooth.size // 1_000_000, 1)]
    return smooth > np.quantile(sample, 1 - fill)


def _label_scipy(mask: np.ndarray) -> tuple[int, int]:
    import scipy.ndimage as ndi

    labels, n = ndi.label(mask)
    return n, labels.max()


def _label_cc3d(mask: np.ndarray) -> tuple[int, int]:
    import cc3d

    labels, n = cc3d.connected_components(mask, connectivity=4, return_N=True)
    return n, labels.max()


def _label_cv2(mask: np.ndarray) -> tuple[int, int]:
    import cv2

    n, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=4)
    return n - 1, labels.max()  # OpenCV counts the background as a label


#: Whole-image labellers, 4-connected as scipy's default; each returns (objects, largest label).
WHOLE_IMAGE = {"scipy": _label_scipy, "cc3d": _label_cc3d, "cv2": _label_cv2}


def prepare_label(mask_path: str, implementation: Labeller, chunk_px: int | None) -> Work:
    """Load the mask and return its labelling, reduced to (objects, largest label).

    Tiled labels are reduced to their maximum rather than gathered, so the peak is the
    working set; a whole-image labeller holds the whole label image by construction.
    """
    mask = np.load(mask_path)
    if chunk_px is None:
        work: Callable[..., Any] = WHOLE_IMAGE[implementation]
    else:
        import dask
        import dask.array as da

        if implementation == "nima_lessons":
            from nima_lessons.labels import label
        else:
            from dask_image.ndmeasure import label

        def work(image: np.ndarray, chunks: int | None = chunk_px) -> Any:
            labels, n = label(da.from_array(image, chunks=chunks))
            return dask.compute(n, labels.max())

    small = mask[:64, :64]
    return Work(
        run=lambda: work(mask),
        warmup=lambda: work(small) if chunk_px is None else work(small, 32),
        record=lambda found: {"n_labels": int(found[0]), "max_label": int(found[1])},
    )


def _trials(context: Context) -> Trials:
    params = context.params
    for size_px in params["sizes_px"]:
        path = context.scratch / f"mask-{size_px}.npy"
        np.save(path, blob_mask(size_px, params["blob_px"], params["fill"]))
        layouts: list[int | None] = [None, *params["chunks_px"]]
        for chunk_px in layouts:
            for name, (role, requires) in LABELLERS.items():
                if (chunk_px is None) != (name in WHOLE_IMAGE):
                    continue
                n_blocks = 0 if chunk_px is None else math.ceil(size_px / chunk_px) ** 2
                if name == "dask_image" and n_blocks > params["anchor_max_blocks"]:
                    context.note(
                        f"dask_image skipped at {size_px} px in {chunk_px}-px chunks: {n_blocks} "
                        f"blocks, more than {params['anchor_max_blocks']}, where its time grows "
                        "faster than the number of blocks."
                    )
                    continue
                job = {"mask_path": str(path), "implementation": name, "chunk_px": chunk_px}
                yield Trial(
                    "label",
                    name,
                    role,
                    {"size_px": size_px, "chunk_px": chunk_px},
                    job=(f"{__name__}:prepare_label", job),
                    # dask-image takes minutes at 64 blocks: one timing is enough there.
                    repeats=1 if name == "dask_image" else None,
                    compare=("seconds", "peak_rss_bytes"),
                    requires=requires,
                )
        path.unlink()


def speed_claims(comparisons: list[dict]) -> list[dict]:
    """State the speed targets on the target mask: >= 10x dask-image, within 3x of scipy.

    Examples
    --------
    >>> row = {"metric": "seconds", "anchor": "scipy", "ratio": 0.5,
    ...        "params": {"size_px": 8192, "chunk_px": 1024}}
    >>> speed_claims([row])[0]["holds"]
    True
    """
    return [
        claim(
            f"tiled labelling of a {TARGET_SIZE[0]}^2 mask in {TARGET_SIZE[1]}^2 chunks is "
            f"{'at least 10x faster than' if TARGETS[item['anchor']] > 1 else 'within 3x of'} "
            f"{item['anchor']} (anchor / ours)",
            item["ratio"],
            TARGETS[item["anchor"]],
        )
        for item in comparisons
        if item["metric"] == "seconds"
        and item["anchor"] in TARGETS
        and (item["params"]["size_px"], item["params"]["chunk_px"]) == TARGET_SIZE
    ]


def _claims(rows: list[dict], params: Mapping[str, Any], comparisons: list[dict]) -> list[dict]:
    def count(row: dict) -> tuple[int, int]:
        return row["params"]["size_px"], row["metrics"]["n_labels"]

    scipy_counts = dict(count(row) for row in rows if row["implementation"] == "scipy")
    agree = all(scipy_counts[size_px] == n for size_px, n in map(count, rows))
    agreement = claim("every labelling finds scipy's number of objects", float(agree), 1.0)
    return [agreement, *speed_claims(comparisons)]


CASE = Case(
    title="Tiled labelling: nima_lessons.labels against dask-image, scipy, cc3d and OpenCV",
    claim="Ours labels a chunked mask exactly as scipy does on the whole image, faster than "
    "dask_image.ndmeasure.label and with a peak memory that follows the chunk size, not the image.",
    presets=presets(
        "sizes_px chunks_px blob_px fill anchor_max_blocks",
        tiny=([96], [32], 4, 0.3, 16),
        quick=([1024], [512], 8, 0.3, 16),
        full=([4096, 8192], [1024, 2048], 12, 0.3, 64),
    ),
    repeats={"tiny": 1, "quick": 1, "full": 2},
    trials=_trials,
    claims=_claims,
    notes=[
        "Each labelling runs in a fresh Python process (threads scheduler) after loading the mask; "
        "peak RSS is that process's high-water mark, work MB the part above its baseline "
        "(interpreter, libraries and mask).",
        "Tiled labels are reduced to their maximum rather than gathered into one array, so the "
        "peak shows the working set; whole-image labels (scipy, cc3d, OpenCV) are an int32 image "
        "by construction. All label 4-connected, scipy's default.",
    ],
    figure=functools.partial(
        plotting.plot_bench_panels,
        x="chunk_px",
        ys=["seconds", "work_MB"],
        by=["implementation", "size_px"],
        logx=True,
    ),
)
