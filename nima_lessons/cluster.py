"""Choosing where dask computes: a local scheduler, a LocalCluster or a remote one.

Everything in nima_lessons builds ordinary dask graphs, so moving to a cluster is
a matter of which scheduler runs them; this module names those choices.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dask

LOCAL_SCHEDULERS = ("synchronous", "threads", "processes")
SCHEDULER_CHOICES = (*LOCAL_SCHEDULERS, "distributed")


def validate_scheduler(spec: str | None) -> str:
    """Check a scheduler specification and return it normalised.

    Parameters
    ----------
    spec : str or None
        ``"synchronous"``, ``"threads"``, ``"processes"``, ``"distributed"`` (a
        new LocalCluster) or the address of a running scheduler
        (``"tcp://host:port"``). ``None`` means ``"threads"``.

    Returns
    -------
    str
        The specification, lower-cased where it is a name.

    Raises
    ------
    ValueError
        If ``spec`` is neither a known name nor a scheduler address.
    """
    if spec is None:
        return "threads"
    name = spec.strip()
    if name.lower() in SCHEDULER_CHOICES:
        return name.lower()
    if "://" in name:
        return name
    raise ValueError(
        f"unknown scheduler {spec!r}: expected one of {', '.join(SCHEDULER_CHOICES)} "
        "or a scheduler address such as tcp://127.0.0.1:8786"
    )


@contextlib.contextmanager
def use_scheduler(
    spec: str | None = None, n_workers: int | None = None, dashboard: bool = False
) -> Iterator[object]:
    """Run the enclosed dask computations on the named scheduler.

    Parameters
    ----------
    spec : str, optional
        See :func:`validate_scheduler`.
    n_workers : int, optional
        Worker processes of a new LocalCluster (``spec="distributed"``).
    dashboard : bool
        Serve the dashboard of a new LocalCluster on a free port; off by
        default so that tests never clash on port 8787.

    Yields
    ------
    distributed.Client or None
        The client for distributed schedulers, ``None`` for local ones.
    """
    name = validate_scheduler(spec)
    if name in LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=name):
            yield None
        return
    from distributed import Client, LocalCluster

    if name == "distributed":
        cluster = LocalCluster(
            n_workers=n_workers,
            processes=True,
            threads_per_worker=1 if n_workers else None,
            dashboard_address=":0" if dashboard else None,
        )
        with cluster, Client(cluster) as client:
            yield client
    else:
        with Client(name) as client:
            yield client
