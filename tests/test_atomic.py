"""Atomic, non-destructive writes, one writer at a time."""

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from nima_lessons._atomic import (
    OutputLockedError,
    OverlappingPathsError,
    atomic_path,
    check_separate,
    find_leftovers,
    leftovers_in,
    lock_path,
    write_lock,
)


def test_success_moves_into_place(tmp_path):
    target = tmp_path / "out"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("1")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "1"
    assert list(tmp_path.iterdir()) == [target]


def test_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_existing_data_is_kept_unless_asked(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("precious")
    with pytest.raises(FileExistsError, match=r"out.txt.*overwrite"), atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "precious"
    with atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert list(tmp_path.iterdir()) == [target]


def test_failed_overwrite_keeps_the_old_data(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("precious")
    with pytest.raises(KeyboardInterrupt), atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("partial")
        raise KeyboardInterrupt
    assert target.read_text() == "precious"


# ------------------------------------------------------------------ the lock


def test_lock_is_released_on_success_and_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with write_lock(target) as lock:
        record = json.loads(lock.read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert not lock.exists()
    with pytest.raises(KeyboardInterrupt), write_lock(target):
        raise KeyboardInterrupt
    assert not lock.exists()


def test_same_thread_may_lock_again_another_thread_may_not(tmp_path):
    target = tmp_path / "out.txt"
    refused = []

    def other_thread():
        try:
            with write_lock(target):
                pass
        except OutputLockedError as error:
            refused.append(str(error))

    with write_lock(target), write_lock(target):  # nested: the command, then save
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert lock_path(target).exists()
    assert refused and "another thread of this process" in refused[0]
    assert not lock_path(target).exists()


def test_second_process_is_refused_while_the_first_holds_the_lock(tmp_path):
    target = tmp_path / "out.txt"
    script = (
        "import sys; from nima_lessons._atomic import write_lock\n"
        f"with write_lock({str(target)!r}):\n"
        "    print('locked', flush=True); sys.stdin.readline()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match=f"process {holder.pid} on host"):
            with atomic_path(target) as tmp:
                tmp.write_text("second")
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0 and not target.exists()
    assert list(tmp_path.iterdir()) == []  # released by the holder, nothing else written


# ------------------------------------------------------------ leftovers, paths


def test_leftovers_of_killed_writes_are_removed_by_the_next_one(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "old.txt").write_text("old")
    stale = tmp_path / ".data.partial-0123abcd"
    stale.mkdir()
    (tmp_path / ".data.old-89abcdef").write_text("superseded")
    unrelated = tmp_path / ".other.partial-0123abcd"
    unrelated.mkdir()
    assert find_leftovers(target) == sorted([stale, tmp_path / ".data.old-89abcdef"])
    assert leftovers_in([tmp_path]) == {
        target: sorted([stale, tmp_path / ".data.old-89abcdef"]),
        tmp_path / "other": [unrelated],
    }
    with atomic_path(target, overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.partial-0123abcd", "data"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_a_result_renamed_aside_by_a_killed_swap_is_put_back(tmp_path):
    target = tmp_path / "out.txt"
    (tmp_path / ".out.txt.old-0123abcd").write_text("complete")  # killed between renames
    with pytest.raises(FileExistsError), atomic_path(target):
        pass
    assert target.read_text() == "complete"


def test_paths_below_a_file_and_overlapping_inputs_are_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="file is a file, not a folder"):
        with atomic_path(tmp_path / "file" / "out.txt"):
            pass
    image = tmp_path / "image.zarr"
    image.mkdir()
    for output, how in [(image, "is"), (image / "out.zarr", "lies inside"), (tmp_path, "contains")]:
        with pytest.raises(OverlappingPathsError, match=f"{how} INPUT"):
            check_separate(output, {"INPUT": image, "--dark": None})
    link = tmp_path / "link.zarr"
    link.symlink_to(image)
    with pytest.raises(OverlappingPathsError, match="is --flat"):
        check_separate(link, {"--flat": image})
    check_separate(tmp_path / "result.zarr", {"INPUT": image})
