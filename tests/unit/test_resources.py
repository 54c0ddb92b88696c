"""Tests for aisci.resources: memory grows with each attempt."""

import pytest

from aisci.resources import mem_per_attempt


def test_memory_doubles_per_attempt():
    mem = mem_per_attempt(1000)
    assert [mem(None, a) for a in (1, 2, 3)] == [1000, 2000, 4000]
    assert mem_per_attempt(300, 1.5)(None, 2) == 450


def test_bad_arguments():
    with pytest.raises(ValueError):
        mem_per_attempt(0)
    with pytest.raises(ValueError):
        mem_per_attempt(100, 0.5)
