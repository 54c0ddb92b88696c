"""The runner of each score-cache stage, for the cohort's workers: SpliceAI and protein language model scorers."""

from __future__ import annotations

from typing import Any, Callable

from aisci.protein.runner import ProteinRunner
from aisci.splice.runner import SpliceRunner

RUNNERS: dict[str, Callable[[dict[str, Any]], Any]] = {"splice": SpliceRunner, "protein": ProteinRunner}
