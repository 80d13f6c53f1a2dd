"""Lazy, parallel and tiled processing of large bio-images with dask.

The package behind the nima-lessons notebooks: the analysis core (reading, the lazy nima
pipeline, saving, labels, tiling, counting, clusters) and the course layer built on it
(:mod:`nima_lessons.course`: synthetic data, exercises, plotting, benchmarks).
"""

from nima_lessons import _moved

__all__ = ["__version__"]

#: The package version, the one place it is written (``pyproject.toml`` reads it).
__version__ = "0.1.0"

# Old paths of the course layer (nima_lessons.synthetic, .bench, .plotting, .exercises)
# keep working, with a DeprecationWarning naming the new place.
_moved.install()
