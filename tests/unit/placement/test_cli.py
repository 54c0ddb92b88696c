"""aisci plan / simulate-cluster arguments: durations and runtime tables."""

from __future__ import annotations

import argparse

import pytest

from aisci.errors import InputError
from aisci.placement.cli import _runtime_table, duration_s


def test_durations_and_runtime_tables(tmp_path):
    assert duration_s("12h") == 43200 and duration_s("90m") == 5400 and duration_s("2d") == 172800
    for bad in ("soon", "2", "0h", "-3h"):  # a bare number would be ambiguous (s? min? h?)
        with pytest.raises(argparse.ArgumentTypeError):
            duration_s(bad)
    good = tmp_path / "r.yaml"
    good.write_text("align_reads: {cpu: 3600}\nscore_missense: {cpu: 7200, gpu: 600}\n")
    assert _runtime_table(good) == {"align_reads": {"cpu": 3600.0}, "score_missense": {"cpu": 7200.0, "gpu": 600.0}}
    bad = tmp_path / "b.yaml"
    bad.write_text("align_reads: {cpu: -1}\n")
    with pytest.raises(InputError, match=r"b.yaml: align_reads.cpu: -1 is not a positive number"):
        _runtime_table(bad)
    bad.write_text("align_reads: {tpu: 5}\n")
    with pytest.raises(InputError, match=r"align_reads: expected"):
        _runtime_table(bad)
