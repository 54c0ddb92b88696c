"""Progress of a long job: a log line every few percent with the rate and the time left, a bar on a terminal.

A SpliceAI or protein-model job on a real callset runs for hours; without this its log holds its
first and last line only, and nobody can tell a slow job from a stuck one. Each long stage
(`aisci splice score`, `aisci plm score` and `mutagenesis`, `aisci align`) counts its work in the
unit it knows (records, proteins, bytes of reads) and calls `Progress.update`; the log (a Slurm
job's log file) gets a line each ``step`` percent, or each ``every`` seconds when the total is
unknown, and an interactive terminal also gets a bar redrawn in place.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import IO, Callable

log = logging.getLogger("aisci.progress")


def duration(seconds: float) -> str:
    """``1h02m``, ``4m05s`` or ``12s``."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Counts work done towards ``total`` and reports it.

    Args:
        what: what is counted, for the messages ("records of calls.vcf.gz").
        total: the whole amount, or None when unknown (then lines come every ``every`` seconds).
        unit: the unit's name ("records", "proteins", "MB").
        step: percent between two log lines.
        every: seconds between two log lines when ``total`` is None.
        after: seconds before the first line: a job shorter than this logs nothing more than before.
        stream: where the terminal bar goes (default stderr; drawn only when it is a terminal).
        clock: the time source (tests pass their own).
    """

    def __init__(self, what: str, total: float | None, unit: str, *, step: float = 5.0, every: float = 60.0,
                 after: float = 10.0, stream: IO[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.step, self.every, self.after = step, every, after
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.done = 0.0
        self.start = self.last_time = clock()
        self.next_percent = step
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.lines = 0

    def update(self, amount: float = 1) -> None:
        """Add ``amount`` of work done; log a line when another ``step`` percent (or ``every`` seconds) has passed."""
        self.done += amount
        now = self.clock()
        if now - self.start < self.after:
            return
        if self.total:
            percent = 100.0 * self.done / self.total
            if percent >= self.next_percent and percent < 100:
                self.next_percent = (int(percent // self.step) + 1) * self.step
                self._line(now)
        elif now - self.last_time >= self.every:
            self._line(now)
        if self.tty:
            self._bar(now)

    def finish(self) -> None:
        """The closing line (when a progress line was written): everything done, the time it took, the mean rate."""
        now = self.clock()
        if self.tty and now - self.start >= self.after:
            self.stream.write("\r\033[K")
            self.stream.flush()
        if not self.lines:
            return
        elapsed = now - self.start
        log.info("%s: %s %s done in %s (%s)", self.what, _amount(self.done), self.unit, duration(elapsed),
                 self._rate(elapsed))

    def message(self, now: float) -> str:
        """What a progress line says at time ``now``."""
        elapsed = now - self.start
        rate = self._rate(elapsed)
        if not self.total:
            return f"{self.what}: {_amount(self.done)} {self.unit} in {duration(elapsed)} ({rate})"
        percent = 100.0 * self.done / self.total
        left = (self.total - self.done) * elapsed / self.done if self.done else None
        eta = f", about {duration(left)} left" if left is not None else ""
        return (f"{self.what}: {percent:.0f}% ({_amount(self.done)} of {_amount(self.total)} {self.unit}) "
                f"in {duration(elapsed)} ({rate}{eta})")

    def _rate(self, elapsed: float) -> str:
        per_second = self.done / elapsed if elapsed > 0 else 0.0
        return f"{per_second:,.1f} {self.unit}/s" if per_second < 100 else f"{per_second:,.0f} {self.unit}/s"

    def _line(self, now: float) -> None:
        self.last_time = now
        self.lines += 1
        if self.tty:
            self.stream.write("\r\033[K")
        log.info("%s", self.message(now))

    def _bar(self, now: float) -> None:
        width = 30
        if self.total:
            filled = int(width * min(self.done / self.total, 1.0))
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {self.message(now)}"[:200])
        else:
            self.stream.write(f"\r{self.message(now)}"[:200])
        self.stream.flush()


def _amount(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def read_offsets(pid: int, targets: set[str]) -> int | None:
    """How far process ``pid`` has read: the summed offsets of its open descriptors of ``targets`` (real paths).

    Linux keeps each open file's offset in /proc/PID/fdinfo. None where /proc is missing or the process is gone.
    """
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return None
    done = 0
    for fd in fds:
        try:
            if os.readlink(f"{fd_dir}/{fd}") not in targets:
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                done += next((int(line.split()[1]) for line in fh if line.startswith("pos:")), 0)
        except (OSError, ValueError):
            continue
    return done
