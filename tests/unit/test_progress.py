"""aisci.progress: a line every few percent with rate and time left, nothing for a short job, a bar on a terminal."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time

from aisci.progress import Progress, duration, read_offsets


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "aisci.progress"]


def test_a_line_every_step_percent_with_rate_and_time_left(caplog):
    clock = Clock()
    progress = Progress("SpliceAI calls.vcf.gz", 1000, "records", step=10, after=0, clock=clock)
    with caplog.at_level(logging.INFO, logger="aisci.progress"):
        for _ in range(1000):
            clock.now += 0.5  # 2 records per second
            progress.update()
        progress.finish()
    got = lines(caplog)
    assert len(got) == 10  # 10 %, 20 %, ... 90 %, then the closing line
    assert got[0] == "SpliceAI calls.vcf.gz: 10% (100 of 1,000 records) in 50s (2.0 records/s, about 7m30s left)"
    assert got[-1] == "SpliceAI calls.vcf.gz: 1,000 records done in 8m20s (2.0 records/s)"


def test_a_short_job_logs_nothing_more(caplog):
    clock = Clock()
    progress = Progress("x", 10, "records", clock=clock)  # after=10 s by default
    with caplog.at_level(logging.INFO, logger="aisci.progress"):
        for _ in range(10):
            clock.now += 0.1
            progress.update()
        progress.finish()
    assert lines(caplog) == []


def test_unknown_total_logs_by_time(caplog):
    clock = Clock()
    progress = Progress("reads", None, "MB", every=60, after=0, clock=clock)
    with caplog.at_level(logging.INFO, logger="aisci.progress"):
        for _ in range(300):
            clock.now += 1
            progress.update(2)
    assert lines(caplog) == [f"reads: {2 * t:,} MB in {duration(t)} (2.0 MB/s)" for t in (60, 120, 180, 240, 300)]


def test_a_bar_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    clock = Clock()
    tty, plain = Tty(), io.StringIO()
    for stream in (tty, plain):
        progress = Progress("x", 4, "records", after=0, stream=stream, clock=clock)
        for _ in range(4):
            clock.now += 1
            progress.update()
    assert "\r[" in tty.getvalue() and "#" * 30 in tty.getvalue()
    assert plain.getvalue() == ""


def test_duration():
    assert [duration(s) for s in (0, 59.6, 61, 3600, 3725)] == ["0s", "1m00s", "1m01s", "1h00m", "1h02m"]


def test_the_aligner_offset_is_read_from_proc(tmp_path):
    """The offset `aisci align` reports is the kernel's own for the reading process's open file."""
    reads = tmp_path / "r_1.fq"
    reads.write_bytes(b"@r\nACGT\n+\nIIII\n" * 1000)
    code = (f"import sys, time; f = open({str(reads)!r}, 'rb', buffering=0); f.read(1234); "
            "print('ready', flush=True); time.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert read_offsets(proc.pid, {str(reads.resolve())}) == 1234
        assert read_offsets(proc.pid, {str(tmp_path / "other.fq")}) == 0
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.1)
    assert read_offsets(proc.pid, {str(reads.resolve())}) is None  # gone: nothing to say
