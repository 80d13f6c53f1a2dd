"""Tests of nima_lessons.cluster: scheduler names, LocalClusters and running clusters."""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import psutil
import pytest
import tifffile
import xarray as xr
from distributed import Client

from nima_lessons.cluster import (
    SCHEDULER_CHOICES,
    add_scheduler_arguments,
    local_cluster,
    security_from_arguments,
    use_scheduler,
    validate_scheduler,
)

# The interpreter keeps one multiprocessing helper for its whole life once any
# process pool was used; it is not a leak.
PERMANENT_HELPERS = ("resource_tracker", "forkserver", "semaphore_tracker")


def child_processes() -> set[psutil.Process]:
    """Live descendants of this test process, without multiprocessing's own helpers."""
    children = set()
    for child in psutil.Process().children(recursive=True):
        try:
            command = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if not any(helper in command for helper in PERMANENT_HELPERS):
            children.add(child)
    return children


def assert_no_new_processes(before: set[psutil.Process]) -> None:
    # Worker processes are asked to stop on exit; give them the time to do so.
    _, alive = psutil.wait_procs(child_processes() - before, timeout=20)
    assert not alive, f"processes left running: {[p.cmdline() for p in alive]}"


def dashboard_status(client: Client) -> int:
    """HTTP status of the scheduler's dashboard page (404 when the dashboard is off)."""
    url = client.dashboard_link
    assert ":8787/" not in url
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def where_tasks_ran(n_tasks: int = 4) -> set[tuple[int, int]]:
    """(process id, thread id) of each task of a small dask computation."""

    def whereami(_):
        return os.getpid(), threading.get_ident()

    return set(dask.compute(*[dask.delayed(whereami)(i) for i in range(n_tasks)]))


@pytest.mark.parametrize("name", SCHEDULER_CHOICES)
def test_known_names_are_accepted_in_any_case(name):
    assert validate_scheduler(name.upper()) == name
    assert validate_scheduler(f" {name} ") == name


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, "threads"),
        ("tcp://10.1.2.3:8786", "tcp://10.1.2.3:8786"),
        ("tls://scheduler.example.org:8786", "tls://scheduler.example.org:8786"),
        ("node-12:8786", "tcp://node-12:8786"),
    ],
)
def test_addresses_are_accepted(spec, expected):
    assert validate_scheduler(spec) == expected


@pytest.mark.parametrize("spec", ["thread", "multiprocessing", "", "tcp://", "host:port"])
def test_bad_names_are_rejected_with_the_choices(spec):
    with pytest.raises(ValueError, match="expected one of synchronous, threads, processes"):
        validate_scheduler(spec)


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="int"):
        validate_scheduler(8786)


@pytest.mark.parametrize("n_workers", [0, -1, 2.5, True])
def test_bad_n_workers_rejected(n_workers):
    with pytest.raises(ValueError, match="n_workers must be a positive integer"):
        with use_scheduler("threads", n_workers=n_workers):
            pass


def test_local_schedulers_run_where_named_and_restore_the_setting():
    main = (os.getpid(), threading.get_ident())
    previous = dask.config.get("scheduler", None)
    with use_scheduler("synchronous") as client:
        assert client is None
        assert where_tasks_ran() == {main}
    with use_scheduler("threads", n_workers=3):
        assert dask.config.get("num_workers") == 3
        places = where_tasks_ran(8)
        assert {pid for pid, _ in places} == {os.getpid()} and main not in places
    assert dask.config.get("scheduler", None) == previous


def test_processes_scheduler_keeps_one_pool_and_leaves_no_process():
    before = child_processes()
    image = np.arange(24 * 30).reshape(24, 30)
    with use_scheduler("processes", n_workers=2):
        first = {pid for pid, _ in where_tasks_ran()}
        total = da.from_array(image, chunks=(8, 10)).sum().compute()
        second = {pid for pid, _ in where_tasks_ran()}
    assert os.getpid() not in first
    assert len(first | second) <= 2  # the same worker processes for every computation
    assert total == image.sum()
    assert_no_new_processes(before)


@pytest.mark.distributed
def test_new_local_cluster_has_worker_processes_and_is_stopped():
    before = child_processes()
    with use_scheduler("distributed", n_workers=2, dashboard=True) as client:
        workers = client.scheduler_info()["workers"].values()
        assert len(workers) == 2 and all(w["nthreads"] == 1 for w in workers)
        pids = {pid for pid, _ in where_tasks_ran()}
        assert os.getpid() not in pids
        assert pids <= {p.pid for p in child_processes()}
        assert dashboard_status(client) == 200  # served, on a free port
        image = np.arange(40 * 50, dtype=np.int64).reshape(40, 50)
        assert da.from_array(image, chunks=10).sum().compute() == image.sum()
    assert client.status == "closed"
    assert_no_new_processes(before)


@pytest.mark.distributed
def test_running_cluster_by_address_is_used_and_left_running():
    before = child_processes()
    with local_cluster(n_workers=1) as cluster:
        with Client(cluster, set_as_default=False) as probe:
            worker_pids = set(probe.run(os.getpid).values())
        with use_scheduler(cluster.scheduler_address) as client:
            assert {pid for pid, _ in where_tasks_ran()} == worker_pids
            assert dashboard_status(client) == 404  # off by default: no page served
        assert client.status == "closed"
        # Only the connection was closed: the cluster still computes.
        with Client(cluster.scheduler_address, set_as_default=False) as again:
            assert again.submit(sum, [1, 2, 3]).result() == 6
        with pytest.raises(ValueError, match="scale that cluster"):
            with use_scheduler(cluster.scheduler_address, n_workers=2):
                pass
    assert_no_new_processes(before)


def test_command_line_arguments_feed_use_scheduler():
    parser = argparse.ArgumentParser()
    add_scheduler_arguments(parser)
    defaults = parser.parse_args([])
    assert (defaults.scheduler, defaults.workers, defaults.dashboard) == ("threads", None, False)
    args = parser.parse_args(["--scheduler", "synchronous", "--workers", "1"])
    with use_scheduler(args.scheduler, args.workers, args.dashboard):
        assert where_tasks_ran() == {(os.getpid(), threading.get_ident())}
    with pytest.raises(ValueError, match="unknown scheduler 'gpu'"):
        with use_scheduler(parser.parse_args(["--scheduler", "gpu"]).scheduler):
            pass


def test_unreachable_address_names_it():
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(OSError, match=f"no dask scheduler answered at {address}"):
        with use_scheduler(address, timeout_seconds=1):
            pass


# ------------------------------------------------------------------------ TLS


def write_certificates(folder: Path) -> dict[str, Path]:
    """A certificate authority and one certificate it signs for 127.0.0.1, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: str, public_key, signing_key, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = "nima-lessons test CA"
    ca_cert = build(ca_name, ca_name, ca_key.public_key(), ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("127.0.0.1", "nima-lessons test CA", key.public_key(), ca_key, False)
    files = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    files["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@pytest.mark.distributed
@pytest.mark.slow
def test_pipeline_runs_through_a_tls_secured_scheduler_and_worker(tmp_path):
    from distributed.security import Security

    from nima_lessons.cli import main
    from nima_lessons.course.synthetic import ratiometric_timelapse
    from nima_lessons.pipeline import run_pipeline
    from nima_lessons.store import open_result, save

    files = write_certificates(tmp_path)
    options = ["--tls-ca-file", files["ca"], "--tls-cert", files["cert"], "--tls-key", files["key"]]
    parser = argparse.ArgumentParser()
    add_scheduler_arguments(parser)
    security = security_from_arguments(parser.parse_args(list(map(str, options))))
    assert isinstance(security, Security) and security.require_encryption
    data = ratiometric_timelapse(n_t=2, shape=(96, 96), n_cells=4, seed=1)
    result = run_pipeline(data.image.chunk({"T": 1, "C": 1}), data.dark, data.flat)
    before = child_processes()
    with local_cluster(n_workers=1, security=security) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        # Plain TCP, or TLS without a certificate signed by the authority, is refused.
        scheduler_before = dask.config.get("scheduler", None)
        for refused in (address.replace("tls://", "tcp://"), address):
            with pytest.raises(OSError, match="no dask scheduler answered"):
                with use_scheduler(refused, timeout_seconds=3, security=Security()):
                    pass
            # Nothing is left pointing at the refused scheduler.
            assert dask.config.get("scheduler", None) == scheduler_before
        with use_scheduler(address, security=security) as client:
            assert client.scheduler_info()["address"] == address
            save(result, tmp_path / "tls.zarr")
        tiff = tmp_path / "image.tif"
        tifffile.imwrite(tiff, data.image.values, metadata={"axes": "TCZYX"})
        argv = ["pipeline", str(tiff), str(tmp_path / "cli.zarr"), "--scheduler", address,
                "--channels", "0=G,1=R,2=C", "--no-progress", *map(str, options)]  # fmt: skip
        assert main(argv) == 0
    assert_no_new_processes(before)
    threaded = result.compute(scheduler="threads")
    xr.testing.assert_identical(open_result(tmp_path / "tls.zarr").compute(), threaded)
    assert open_result(tmp_path / "cli.zarr")["labels"].max() > 0
