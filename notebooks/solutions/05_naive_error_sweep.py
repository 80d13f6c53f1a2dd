# Rechunk the image to each tile size, count every tile on its own with map_blocks
# (counting.count_map does exactly that) and add up; one dask.compute for all sizes shares
# the reading of the image.
#
# Why the error depends on the tile size: a nucleus is counted once more for every extra tile
# it reaches, i.e. for every tile border that cuts it. A border cuts the nuclei whose centre
# lies within about half a diameter of it, so the error is proportional to the total length
# of the tile borders: (rows of tiles - 1) x image width + (columns of tiles - 1) x image
# height, which is about 2 x image area / t for tiles of t px. Hence the error falls as
# 1 / tile size, and the error per pixel of border (right) stays about constant: roughly the
# number of nuclei per px^2 times their diameter.
import dask
import matplotlib.pyplot as plt
import numpy as np

from nima_lessons import counting


def naive_error_sweep(tiles, tile_sizes, whole_count):
    """Return {tile size: naive error} for the image `tiles` cut in tiles of each size."""
    totals = dask.compute(*[counting.count_map(tiles.rechunk(t)).sum() for t in tile_sizes])
    return {t: int(total) - whole_count for t, total in zip(tile_sizes, totals)}


# The sweep on the lesson's image (`image` and `whole_count` come from the cells above):
tile_sizes = np.array([84, 100, 126, 168, 210, 252, 336, 500])
errors = naive_error_sweep(image, tile_sizes.tolist(), whole_count)  # noqa: F821
height, width = image.shape  # noqa: F821
border_px = (np.ceil(height / tile_sizes) - 1) * width + (np.ceil(width / tile_sizes) - 1) * height
values = np.array(list(errors.values()))
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
left.plot(tile_sizes, values, "o-")
left.set(xlabel="tile size (px)", ylabel="naive error (nuclei)", ylim=(0, None))
right.plot(tile_sizes, values / border_px, "o-")
right.set(xlabel="tile size (px)", ylabel="error per px of tile border", ylim=(0, None))
print("naive error by tile size:", errors)
