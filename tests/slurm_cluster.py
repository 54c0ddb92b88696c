"""The local one-node Slurm cluster for tests: bring it up (scripts/slurm-local) and read sacct."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SLURM_LOCAL = Path(__file__).resolve().parents[1] / "scripts" / "slurm-local"


def ensure_cluster() -> None:
    """Make sure the local Slurm cluster is up, starting it when running as root.

    As root this runs ``scripts/slurm-local up`` (quick when the cluster is already up). As another
    user it only checks that a controller answers, since starting daemons needs root.

    Raises:
        RuntimeError: the cluster could not be brought up (the message holds the script's output),
            or, not being root, no Slurm controller answers.
    """
    if os.geteuid() == 0:
        proc = subprocess.run(
            [str(SLURM_LOCAL), "up"],
            check=False,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{SLURM_LOCAL} up failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        return
    try:
        proc = subprocess.run(
            ["scontrol", "ping"],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except FileNotFoundError:
        proc = None
    if proc is None or proc.returncode != 0 or "is UP" not in proc.stdout:
        raise RuntimeError(
            f"no Slurm controller answers and not root: run `sudo {SLURM_LOCAL} up`"
        )


def sacct_rows(*args: str) -> list[dict[str, str]]:
    """Run ``sacct --parsable2 *args`` and return one dict per row, keyed by the header's columns.

    Args:
        *args: sacct arguments, including the columns (``-o JobID,State,...``); no ``--noheader``.

    Returns:
        The rows, e.g. ``[{"JobID": "12", "State": "COMPLETED"}, {"JobID": "12.batch", ...}]``.

    Raises:
        RuntimeError: sacct failed or wrote an error.
    """
    proc = subprocess.run(
        ["sacct", "--parsable2", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0 or proc.stderr.strip():
        raise RuntimeError(
            f"sacct {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()}"
        )
    lines = proc.stdout.splitlines()
    if not lines:
        return []
    header = lines[0].split("|")
    return [dict(zip(header, line.split("|"))) for line in lines[1:]]
