"""The course layer: synthetic data, exercise checkers, plotting, benchmarks and teaching readers.

It is built on the analysis core (:mod:`nima_lessons.io`, :mod:`nima_lessons.pipeline`,
:mod:`nima_lessons.store`, ...), which never imports it.
"""
