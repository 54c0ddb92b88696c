"""aisci.slurm.sacct.own_run_id: the run a process inside a Slurm job belongs to."""

from __future__ import annotations

import stat

from aisci.slurm.sacct import own_run_id


def test_own_run_id_from_the_job_name_or_from_squeue(tmp_path):
    assert own_run_id({}) is None and own_run_id({"SLURM_JOB_ID": "x"}) is None
    # inside a job step SLURM_JOB_NAME is the step's ("python"): the job's name comes from squeue
    squeue = tmp_path / "squeue"
    squeue.write_text('#!/bin/sh\n[ "$3" = 42 ] && [ "$5" = %j ] && echo "  0f3c-run  " || exit 1\n')
    squeue.chmod(squeue.stat().st_mode | stat.S_IEXEC)
    assert own_run_id({"SLURM_JOB_ID": "42", "SLURM_JOB_NAME": "python"}, squeue=str(squeue)) == "0f3c-run"
    assert own_run_id({"SLURM_JOB_ID": "43"}, squeue=str(squeue)) is None  # squeue fails: no run
    assert own_run_id({"SLURM_JOB_ID": "42"}, squeue=str(tmp_path / "none")) is None  # no squeue here
