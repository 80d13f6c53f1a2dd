"""Choosing where dask computes: a local scheduler, a new LocalCluster or a running one.

Everything in nima_lessons builds ordinary dask graphs, so moving to a cluster is a
matter of which scheduler runs them; this module names those choices, owns the
process pools of the ``processes`` scheduler, and secures connections with TLS
(``distributed.security.Security``) when asked to.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

import dask
import dask.local
import dask.multiprocessing
import dask.threaded

if TYPE_CHECKING:
    from dask.delayed import Delayed
    from dask.typing import DaskCollection
    from distributed import Client, LocalCluster
    from distributed.security import Security

__all__ = [
    "LOCAL_SCHEDULERS",
    "SCHEDULER_CHOICES",
    "SchedulerLostError",
    "active_client",
    "add_scheduler_arguments",
    "compute_contained",
    "contained_pool",
    "local_cluster",
    "process_pool",
    "scheduler_threads",
    "security_from_arguments",
    "use_scheduler",
    "validate_scheduler",
]

LOCAL_SCHEDULERS = ("synchronous", "threads", "processes")
SCHEDULER_CHOICES = (*LOCAL_SCHEDULERS, "distributed")
# host:port without a protocol, e.g. "10.0.0.5:8786" or "node12:8786".
BARE_ADDRESS = re.compile(r"^[\w.\-]+:\d+$")
CONNECT_TIMEOUT_SECONDS = 10
# The scheduler always runs an HTTP server (health checks, metrics, and the
# dashboard when asked for); a free port on the loopback interface never clashes
# with another cluster on 8787 and is not exposed to the network.
HTTP_ADDRESS = "127.0.0.1:0"
LOOPBACK = "127.0.0.1"
# Client states once the connection to the scheduler is gone.
LOST_STATES = ("connecting", "closing", "closed", "failed")
_UNSET = object()


class SchedulerLostError(ConnectionError):
    """The dask scheduler stopped answering in the middle of a computation."""


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
    pool = _new_process_pool(n_workers)
    try:
        with dask.config.set(pool=pool):
            yield
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _new_process_pool(n_workers: int | None) -> ProcessPoolExecutor:
    # As dask does for its own pools: one hash seed for all processes, so that
    # hashing (and hence tokens) agree between them.
    if os.environ.get("PYTHONHASHSEED") in (None, "0"):
        os.environ["PYTHONHASHSEED"] = "6640"
    size = n_workers or dask.config.get("num_workers", None) or os.cpu_count() or 1
    return ProcessPoolExecutor(
        size,
        mp_context=dask.multiprocessing.get_context(),
        initializer=dask.multiprocessing.initialize_worker_process,
    )


@contextlib.contextmanager
def contained_pool() -> Iterator[None]:
    """Give a block's local computations a pool of its own, stopped after its tasks on exit.

    When a task fails, dask's local schedulers raise at once while the other
    tasks already started keep running; a block that writes (a save) must not
    end, and release its output, while they may still write. With this pool the
    block ends only once every task it started has ended, queued ones being
    cancelled. Under the ``processes`` scheduler one pool for the whole block
    also spares starting worker processes for every computation. Nothing
    changes under the synchronous scheduler; for distributed ones see
    :func:`compute_contained`.
    """
    scheduler = dask.base.get_scheduler()
    pool: Executor
    if scheduler is dask.multiprocessing.get:
        pool = _new_process_pool(None)
    elif scheduler in (None, dask.threaded.get):
        pool = dask.threaded.ContextAwareThreadPoolExecutor(scheduler_threads())
    else:
        yield
        return
    try:
        with dask.config.set(pool=pool):
            yield
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# Delayed is named beside DaskCollection because dask's own annotations of Delayed do
# not match that protocol (its __dask_scheduler__ is not seen as a staticmethod).
def compute_contained(
    *collections: DaskCollection | Delayed, timeout_seconds: float = 300.0
) -> tuple[Any, ...]:
    """Compute like ``dask.compute``; on a distributed cluster, end only with the tasks.

    If the computation fails (or is interrupted), its futures are cancelled and
    this waits, up to ``timeout_seconds``, until no worker still runs one of its
    tasks, then raises. Local schedulers get the same from :func:`contained_pool`.
    """
    client = active_client()
    if client is None:
        return dask.compute(*collections)
    futures = client.compute(list(collections))
    try:
        return tuple(client.gather(futures))
    except BaseException:
        keys = {str(key) for collection in collections for key in collection.__dask_keys__()}
        keys |= {str(key) for collection in collections for key in collection.__dask_graph__()}
        with contextlib.suppress(Exception):
            client.cancel(futures, force=True)
            _wait_until_not_processing(client, keys, timeout_seconds)
        raise


def _wait_until_not_processing(client: Client, keys: set[str], timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        running = {str(key) for tasks in client.processing().values() for key in tasks}
        if not running & keys:
            return
        time.sleep(0.1)


def active_client() -> Client | None:
    """Return the ``distributed.Client`` that computes now, or None for local schedulers."""
    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", scheduler)
    return client if "Client" in type(client).__name__ else None


def scheduler_threads() -> int:
    """Return how many tasks the active scheduler runs at once.

    The threads of all workers of a distributed cluster, 1 for the
    synchronous scheduler, else dask's ``num_workers`` or the number of cores.
    """
    client = active_client()
    if client is not None and hasattr(client, "nthreads"):
        return max(1, sum(client.nthreads().values()))
    if dask.base.get_scheduler() is dask.local.get_sync:
        return 1
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def local_cluster(
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    dashboard: bool = False,
    security: Security | None = None,
) -> LocalCluster:
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
    security : distributed.security.Security, optional
        TLS certificates: the scheduler and workers then talk over ``tls://``
        and accept only peers with certificates signed by the same authority.
        Every server listens on the loopback interface (127.0.0.1) in any case.

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
    secured = {} if security is None else {"security": security, "protocol": "tls://"}
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        host=LOOPBACK,
        dashboard_address=None,
        scheduler_kwargs={"dashboard": dashboard, "dashboard_address": HTTP_ADDRESS},
        **secured,
    )


@contextlib.contextmanager
def use_scheduler(
    spec: str | None = None,
    n_workers: int | None = None,
    dashboard: bool = False,
    timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
    security: Security | None = None,
) -> Iterator[Client | None]:
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
    security : distributed.security.Security, optional
        TLS certificates for the connection (a ``tls://`` address), or for
        the scheduler and workers of a new LocalCluster. Default: dask's
        configuration (``distributed.comm.tls.*``), plain TCP when it has none.

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
    SchedulerLostError
        If the scheduler stops answering while the block computes.

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
        settings: dict[str, str | int] = {"scheduler": name}
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
        with (
            local_cluster(n_workers, dashboard=dashboard, security=security) as cluster,
            Client(cluster, security=security) as client,
        ):
            yield client
        return
    if n_workers is not None:
        raise ValueError(
            f"n_workers={n_workers} cannot be applied to the running cluster at {name}: "
            "scale that cluster itself (for example cluster.scale(n))"
        )
    # A Client that fails to connect (a refused TLS handshake, say) can leave
    # dask's scheduler setting pointing at it; put the settings back then.
    settings = {key: dask.config.config.get(key, _UNSET) for key in ("scheduler", "shuffle")}
    try:
        client = Client(name, timeout=timeout_seconds, security=security)
    except (OSError, TypeError) as error:
        for key, value in settings.items():
            if value is _UNSET:
                dask.config.config.pop(key, None)
            else:
                dask.config.set({key: value})
        hint = (
            " and the TLS certificates (--tls-ca-file, --tls-cert, --tls-key)"
            if name.startswith("tls://")
            else ""
        )
        raise OSError(
            f"no dask scheduler answered at {name} within {timeout_seconds} s; check the "
            f"address (printed by `dask scheduler` or cluster.scheduler_address){hint} and "
            "that this machine can reach it"
        ) from error
    with client, _lost_scheduler_errors(client, name):
        yield client


@contextlib.contextmanager
def _lost_scheduler_errors(client: Client, address: str) -> Iterator[None]:
    """Report a computation cut short by the loss of the scheduler as such."""
    try:
        yield
    except Exception as error:
        if client.status not in LOST_STATES:
            raise
        raise SchedulerLostError(
            f"lost the connection to the dask scheduler at {address} "
            f"({type(error).__name__}{': ' + str(error) if str(error) else ''})"
        ) from error


def add_scheduler_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler``, ``--workers``, ``--dashboard`` and TLS options to a parser.

    The values are meant for :func:`use_scheduler`, which validates them
    (``use_scheduler(args.scheduler, args.workers, args.dashboard,
    security=security_from_arguments(args))``).

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
        help="with --scheduler distributed, serve the dask dashboard on a free port of "
        "127.0.0.1 and print its address; with a scheduler address, print the address of "
        "that cluster's dashboard",
    )
    tls = parser.add_argument_group(
        "TLS", "certificates for a tls:// scheduler address (or a secured distributed cluster)"
    )
    tls.add_argument("--tls-ca-file", metavar="PEM", help="certificate authority (PEM)")
    tls.add_argument("--tls-cert", metavar="PEM", help="this client's certificate (PEM)")
    tls.add_argument("--tls-key", metavar="PEM", help="this client's private key (PEM)")


def security_from_arguments(args: argparse.Namespace) -> Security | None:
    """Build the ``Security`` of the ``--tls-*`` options, or None when none is given.

    Raises
    ------
    ValueError
        If only some of the three files are given, or one does not exist.
    """
    files = {
        "--tls-ca-file": getattr(args, "tls_ca_file", None),
        "--tls-cert": getattr(args, "tls_cert", None),
        "--tls-key": getattr(args, "tls_key", None),
    }
    given = {option: path for option, path in files.items() if path}
    if not given:
        return None
    missing = [option for option in files if option not in given]
    if missing:
        raise ValueError(f"TLS needs {', '.join(files)}; missing {', '.join(missing)}")
    for option, path in given.items():
        if not os.path.isfile(path):
            raise ValueError(f"{option} {path}: no such file")
    from distributed.security import Security

    # One certificate for every role, so that the same options also secure a
    # new local cluster (--scheduler distributed).
    cert, key = given["--tls-cert"], given["--tls-key"]
    return Security(
        tls_ca_file=given["--tls-ca-file"],
        tls_client_cert=cert,
        tls_client_key=key,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
        require_encryption=True,
    )
