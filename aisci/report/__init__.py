"""The run report: one self-contained HTML page per run (QC, calls, accuracy, AI effects, cluster use)."""
