# Rechunk the image to each tile size, count every tile on its own with map_blocks
# (counting.count_map does exactly that) and add up; one dask.compute for all sizes shares
# the reading of the image.
#
# Why the error depends on the tile size: a nucleus is counted once more for every extra tile
# it reaches, i.e. for every tile border that cuts it. A nucleus d px across is cut along
# each axis when a border falls within d px of it, which happens with a probability of about
# d / t for tiles of t px. So the error is about 2 x count x d / t: it falls as 1 / tile size,
# and error x tile size stays about constant (the right-hand plot).
import dask
import matplotlib.pyplot as plt
import numpy as np

from nima_lessons import counting


def naive_error_sweep(tiles, tile_sizes, whole_count):
    """Return {tile size: naive error} for the image `tiles` cut in tiles of each size."""
    totals = dask.compute(*[counting.count_map(tiles.rechunk(t)).sum() for t in tile_sizes])
    return {t: int(total) - whole_count for t, total in zip(tile_sizes, totals)}


# The sweep on the lesson's image (`image` and `whole_count` come from the cells above):
tile_sizes = [84, 100, 126, 168, 210, 252, 336, 500]
errors = naive_error_sweep(image, tile_sizes, whole_count)  # noqa: F821
sizes = np.array(list(errors))
values = np.array(list(errors.values()))
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
left.plot(sizes, values, "o-")
left.set(xlabel="tile size (px)", ylabel="naive error (nuclei)", ylim=(0, None))
right.plot(sizes, values * sizes, "o-")
right.set(xlabel="tile size (px)", ylabel="error x tile size", ylim=(0, None))
print("naive error by tile size:", errors)
