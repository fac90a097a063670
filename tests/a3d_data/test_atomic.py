"""Files are written whole or not at all."""

from __future__ import annotations

import os
import stat

import pytest

from a3d_data.atomic import atomic_path


def test_the_target_appears_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "sub" / "result.txt"
    with atomic_path(target) as temporary:
        temporary.write_text("done")
        assert not target.exists()
        assert temporary.suffix == ".txt"
    assert target.read_text() == "done"
    assert [p.name for p in target.parent.iterdir()] == ["result.txt"]


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    target = tmp_path / "result.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_previous_version(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("new but incomplete")
        raise RuntimeError("killed")
    assert target.read_text() == "old"


def test_written_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "shared.bin") as temporary:
            temporary.write_bytes(b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "shared.bin").stat().st_mode) == 0o644
