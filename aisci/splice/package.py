"""Files of the official `spliceai` PyPI package (weights, gene tables), found without importing it."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from aisci.errors import InputError

INSTALL = "pip install spliceai==1.3.1"


def official_file(relative: str, what: str) -> Path:
    """Path of ``relative`` (e.g. 'spliceai/models') inside the installed spliceai distribution.

    ``locate_file`` does not import the package, whose ``__init__`` needs pkg_resources and Keras.

    Raises:
        InputError: the package is not installed; ``what`` says what was wanted and the
            alternative to installing it.
    """
    try:
        dist = metadata.distribution("spliceai")
    except metadata.PackageNotFoundError:
        raise InputError(f"{what} comes with the official SpliceAI package: {INSTALL}") from None
    return Path(str(dist.locate_file(relative)))
