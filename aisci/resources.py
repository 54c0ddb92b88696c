"""Resource requests that rules declare: memory that grows with each retry."""

from __future__ import annotations

from typing import Any, Callable


def mem_per_attempt(base_mb: int, factor: float = 2.0) -> Callable[[Any, int], int]:
    """A Snakemake ``mem_mb`` callable: ``base_mb`` on the first attempt, times ``factor`` on each retry.

    A job killed for exceeding its memory (Slurm OUT_OF_MEMORY) is resubmitted by Snakemake's
    ``retries`` with the next attempt number, and so with more memory.

    Args:
        base_mb: memory of the first attempt, in MB.
        factor: growth per retry.

    Returns:
        A function of (wildcards, attempt) giving MB.
    """
    if base_mb <= 0 or factor < 1:
        raise ValueError("base_mb must be positive and factor >= 1")

    def mem_mb(wildcards: Any, attempt: int) -> int:
        return int(base_mb * factor ** (attempt - 1))

    mem_mb.__name__ = f"mem_per_attempt_{base_mb}"
    return mem_mb
