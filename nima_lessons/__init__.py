"""Lazy, parallel and tiled processing of large bio-images with dask.

The package behind the nima-lessons notebooks: synthetic data, the lazy nima
pipeline, tiling tools, benchmarks and exercise checkers.
"""

__version__ = "0.1.0"
