"""aisci: converged HPC/AI workflows for bioinformatics."""

__version__ = "0.1.0"
