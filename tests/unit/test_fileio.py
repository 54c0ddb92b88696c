"""Tests for aisci.fileio: atomic outputs never leave a half-written file; gzip is read transparently."""

import gzip
import os

import pytest

from aisci.fileio import atomic_output, is_gzipped, open_text


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_output_moves_into_place_on_success(tmp_path):
    final = tmp_path / "sub" / "out.vcf.gz"
    with atomic_output(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.endswith(".vcf.gz") and tmp != final
        tmp.write_text("done")
        assert not final.exists()
    assert final.read_text() == "done"
    assert final.stat().st_mode & 0o777 == 0o666 & ~_umask()  # not mkstemp's 0600
    assert [p.name for p in final.parent.iterdir()] == ["out.vcf.gz"]


def test_atomic_output_leaves_nothing_on_error(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("previous complete result")
    with pytest.raises(RuntimeError):
        with atomic_output(final) as tmp:
            tmp.write_text("half")
            raise RuntimeError("tool died")
    assert final.read_text() == "previous complete result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_output_removes_what_a_killed_attempt_left(tmp_path):
    """A job killed mid-write (SIGKILL, scancel) runs no cleanup: its rerun removes the leftover temporary file."""
    final = tmp_path / "S2.markdup.txt"
    left = tmp_path / ".S2.markdup.txt.1z0qim6k.tmp.markdup.txt"
    left.write_text("half")
    other = tmp_path / ".S1.markdup.txt.abcd1234.tmp.markdup.txt"  # another output's: not touched
    other.write_text("being written")
    with atomic_output(final) as tmp:
        tmp.write_text("complete")
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "S2.markdup.txt"]


def test_open_text_reads_plain_and_gzip(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_text("x\ny\n")
    gz = tmp_path / "a.txt.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write("x\ny\n")
    assert not is_gzipped(plain) and is_gzipped(gz)
    for path in (plain, gz):
        with open_text(path) as fh:
            assert fh.read() == "x\ny\n"
