"""Choosing where dask computes: a local scheduler, a new LocalCluster or a running one.

Everything in nima_lessons builds ordinary dask graphs, so moving to a cluster is a
matter of which scheduler runs them; this module names those choices.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import dask
import dask.multiprocessing

LOCAL_SCHEDULERS = ("synchronous", "threads", "processes")
SCHEDULER_CHOICES = (*LOCAL_SCHEDULERS, "distributed")
# host:port without a protocol, e.g. "10.0.0.5:8786" or "node12:8786".
BARE_ADDRESS = re.compile(r"^[\w.\-]+:\d+$")
CONNECT_TIMEOUT_SECONDS = 10
# The scheduler always runs an HTTP server (health checks, metrics, and the
# dashboard when asked for); a free port on the loopback interface never clashes
# with another cluster on 8787 and is not exposed to the network.
HTTP_ADDRESS = "127.0.0.1:0"


def validate_scheduler(spec: str | None) -> str:
    """Check a scheduler specification and return it normalised.

    Parameters
    ----------
    spec : str or None
        ``"synchronous"``, ``"threads"``, ``"processes"``, ``"distributed"`` (a
        new LocalCluster on this machine) or the address of a running scheduler
        (``"tcp://host:port"``; a bare ``"host:port"`` means tcp). ``None`` means
        ``"threads"``.

    Returns
    -------
    str
        The name, lower-cased, or the address with its protocol.

    Raises
    ------
    TypeError
        If ``spec`` is not a string.
    ValueError
        If ``spec`` is neither a known name nor a scheduler address.

    Examples
    --------
    >>> validate_scheduler("Threads")
    'threads'
    >>> validate_scheduler("127.0.0.1:8786")
    'tcp://127.0.0.1:8786'
    """
    if spec is None:
        return "threads"
    if not isinstance(spec, str):
        raise TypeError(f"scheduler must be a string, got {type(spec).__name__}")
    name = spec.strip()
    if name.lower() in SCHEDULER_CHOICES:
        return name.lower()
    if re.match(r"^[a-z][a-z0-9+]*://\S+$", name):
        return name
    if BARE_ADDRESS.match(name):
        return f"tcp://{name}"
    raise ValueError(
        f"unknown scheduler {spec!r}: expected one of {', '.join(SCHEDULER_CHOICES)} "
        "or a scheduler address such as tcp://127.0.0.1:8786"
    )


def _check_positive(value: int | None, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@contextlib.contextmanager
def process_pool(n_workers: int | None = None) -> Iterator[None]:
    """Keep one pool of worker processes for the ``processes`` scheduler of a block.

    Dask's ``processes`` scheduler otherwise starts fresh interpreters for every
    computation, which costs seconds each time (imports) when a block computes
    many times, as a region-by-region save does. Nothing changes when a pool is
    already configured (``dask.config.set(pool=...)``).

    Parameters
    ----------
    n_workers : int, optional
        Processes in the pool; default ``num_workers`` from dask's configuration,
        else the number of cores. They are started when first needed and stopped
        on exit.

    Raises
    ------
    ValueError
        If ``n_workers`` is not a positive integer.
    """
    _check_positive(n_workers, "n_workers")
    if dask.config.get("pool", None) is not None:
        yield
        return
    # As dask does for its own pools: one hash seed for all processes, so that
    # hashing (and hence tokens) agree between them.
    if os.environ.get("PYTHONHASHSEED") in (None, "0"):
        os.environ["PYTHONHASHSEED"] = "6640"
    size = n_workers or dask.config.get("num_workers", None) or os.cpu_count() or 1
    pool = ProcessPoolExecutor(
        size,
        mp_context=dask.multiprocessing.get_context(),
        initializer=dask.multiprocessing.initialize_worker_process,
    )
    try:
        with dask.config.set(pool=pool):
            yield
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def local_cluster(
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    dashboard: bool = False,
):
    """Start a LocalCluster of worker processes on this machine.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes; default: dask's choice from the number of cores.
    threads_per_worker : int, optional
        Threads of each worker; default 1 when ``n_workers`` is given (the
        workers then use as many cores), dask's choice otherwise.
    dashboard : bool
        Serve the dashboard (``client.dashboard_link``) on a free local port.
        Off by default; the scheduler's HTTP server then still listens, on a
        free local port too, so that nothing ever binds 8787.

    Returns
    -------
    distributed.LocalCluster
        Running; close it (``with`` block or ``cluster.close()``) to stop its
        processes.

    Raises
    ------
    ValueError
        If ``n_workers`` or ``threads_per_worker`` is not a positive integer.
    """
    from distributed import LocalCluster

    _check_positive(n_workers, "n_workers")
    _check_positive(threads_per_worker, "threads_per_worker")
    if threads_per_worker is None and n_workers is not None:
        threads_per_worker = 1
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard": dashboard, "dashboard_address": HTTP_ADDRESS},
    )


@contextlib.contextmanager
def use_scheduler(
    spec: str | None = None,
    n_workers: int | None = None,
    dashboard: bool = False,
    timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
) -> Iterator[object]:
    """Run the enclosed dask computations on the named scheduler.

    A new LocalCluster (``"distributed"``) is closed on exit, its worker
    processes with it; a running cluster given by address is left running (only
    the connection to it is closed).

    Parameters
    ----------
    spec : str, optional
        See :func:`validate_scheduler`.
    n_workers : int, optional
        Threads of ``"threads"``, processes of ``"processes"`` (one pool kept
        for the whole block, see :func:`process_pool`), or worker processes (one
        thread each) of a new LocalCluster. Default: dask's choice from the
        number of cores. Not allowed with an address: a running cluster has its
        own workers.
    dashboard : bool
        Serve the dashboard of a new LocalCluster on a free local port (see
        ``client.dashboard_link``); off by default. See :func:`local_cluster`.
    timeout_seconds : float
        How long to try reaching a scheduler given by address.

    Yields
    ------
    distributed.Client or None
        The client for distributed schedulers, ``None`` for local ones.

    Raises
    ------
    ValueError
        If ``spec`` or ``n_workers`` is invalid.
    OSError
        If no scheduler answers at the given address within ``timeout_seconds``.

    Examples
    --------
    >>> import dask.array as da
    >>> with use_scheduler("synchronous"):
    ...     int(da.ones(10, chunks=5).sum().compute())
    10
    """
    name = validate_scheduler(spec)
    _check_positive(n_workers, "n_workers")
    if name in LOCAL_SCHEDULERS:
        settings = {"scheduler": name}
        if n_workers is not None:
            settings["num_workers"] = n_workers
        with dask.config.set(settings):
            if name == "processes":
                with process_pool(n_workers):
                    yield None
            else:
                yield None
        return
    from distributed import Client

    if name == "distributed":
        with local_cluster(n_workers, dashboard=dashboard) as cluster, Client(cluster) as client:
            yield client
        return
    if n_workers is not None:
        raise ValueError(
            f"n_workers={n_workers} cannot be applied to the running cluster at {name}: "
            "scale that cluster itself (for example cluster.scale(n))"
        )
    try:
        client = Client(name, timeout=timeout_seconds)
    except OSError as error:
        raise OSError(
            f"no dask scheduler answered at {name} within {timeout_seconds} s; check the "
            "address (printed by `dask scheduler` or cluster.scheduler_address) and that "
            "this machine can reach it"
        ) from error
    with client:
        yield client


def add_scheduler_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler``, ``--workers`` and ``--dashboard`` to a command's parser.

    The values are meant for :func:`use_scheduler`, which validates them
    (``use_scheduler(args.scheduler, args.workers, args.dashboard)``).

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_scheduler_arguments(parser)
    >>> args = parser.parse_args(["--scheduler", "tcp://10.0.0.5:8786"])
    >>> args.scheduler, args.workers, args.dashboard
    ('tcp://10.0.0.5:8786', None, False)
    """
    parser.add_argument(
        "--scheduler",
        default="threads",
        metavar="NAME|ADDRESS",
        help="where dask computes: synchronous, threads (default), processes, distributed "
        "(a new cluster of worker processes on this machine) or the address of a running "
        "scheduler, e.g. tcp://10.0.0.5:8786",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="threads, processes or worker processes to use (default: one per core); "
        "not for a running scheduler",
    )
    parser.add_argument(
        "--dashboard",
        action="store_true",
        help="with --scheduler distributed, serve the dask dashboard on a free local port",
    )
