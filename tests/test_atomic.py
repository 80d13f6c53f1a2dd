"""Atomic, non-destructive writes."""

import pytest

from nima_lessons._atomic import atomic_path


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
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_existing_data_is_kept_unless_asked(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("precious")
    with pytest.raises(FileExistsError, match="out.txt.*overwrite"):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
    assert target.read_text() == "precious"
    with atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert list(tmp_path.iterdir()) == [target]


def test_failed_overwrite_keeps_the_old_data(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("precious")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.write_text("partial")
            raise KeyboardInterrupt
    assert target.read_text() == "precious"
