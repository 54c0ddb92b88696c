"""Layered configs: which file (or --config) set each key, so that messages name the user's own file."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from aisci import yamlfile
from aisci.errors import InputError
from aisci.fileio import check_readable

OVERRIDES = "--config"


def display_name(path: str | os.PathLike[str]) -> str:
    """A config file as the user would name it: relative to the working directory when inside it."""
    p = Path(path)
    try:
        rel = p.resolve().relative_to(Path.cwd().resolve())
        return rel.as_posix()
    except (ValueError, OSError):
        return str(p)


@dataclass
class Sources:
    """The config's layers, lowest first: (name, mapping). Later layers override earlier ones."""

    layers: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)

    @classmethod
    def single(cls, name: str) -> "Sources":
        """One config of unknown content: every key is attributed to it."""
        return cls([(name, {})])

    @classmethod
    def from_files(cls, files: Iterable[str | os.PathLike[str]], overrides: Mapping[str, Any] | None = None,
                   overrides_name: str = OVERRIDES) -> "Sources":
        """Layers read from config files (lowest first) and command-line overrides on top.

        A file that cannot be read keeps its name with no content: Snakemake has read it already, so
        this only affects which name a message shows.
        """
        layers: list[tuple[str, Mapping[str, Any]]] = []
        for f in files:
            try:
                data = yamlfile.load(Path(f), display_name(f))
            except Exception:  # noqa: BLE001 - names only; Snakemake reported any real problem
                data = {}
            layers.append((display_name(f), data if isinstance(data, dict) else {}))
        if overrides:
            layers.append((overrides_name, dict(overrides)))
        return cls(layers)

    @classmethod
    def from_workflow(cls, workflow: Any) -> "Sources":
        """Snakemake's layering: the Snakefile's ``configfile:`` lowest, then each ``--configfile``, then ``--config``."""
        settings = workflow.config_settings
        cli = [Path(f).absolute() for f in settings.configfiles]
        directive = [Path(f).absolute() for f in workflow.configfiles if Path(f).absolute() not in cli]
        return cls.from_files([*directive, *cli], dict(settings.config or {}))

    def __str__(self) -> str:
        return self.names()

    def names(self) -> str:
        """Every layer's name, for a message about the config as a whole."""
        return ", ".join(name for name, _ in self.layers) or "config"

    def of(self, key: str) -> str:
        """The name of the layer that set ``key`` (dotted), or of an ancestor of it; else all of them."""
        parts = [p for p in key.split(".") if p] if key else []
        for name, data in reversed(self.layers):
            node: Any = data
            for part in parts:
                if not isinstance(node, Mapping) or part not in node:
                    break
                node = node[part]
                if not isinstance(node, Mapping):
                    return name  # this layer set the key or a scalar above it
            else:
                if parts and node is not data:
                    return name
        return self.names()

    def where(self, key: str) -> str:
        """'file: key' for a message about one key."""
        return f"{self.of(key)}: {key}" if key else self.names()


def merge_config(base: dict[str, Any], update: dict[str, Any]) -> None:
    """Snakemake's layering: nested mappings merge key by key, anything else replaces."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_config(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def load_layers(base: Path, configfiles: list[Path], overrides: dict[str, Any]) -> tuple[dict[str, Any], Sources]:
    """Read and merge a config the way Snakemake does: the base, each --configfile, then --config values.

    Raises:
        InputError: a file missing, unreadable, not YAML or not a mapping.
    """
    files = [base] if base.exists() or not configfiles else []
    for path in configfiles:  # the base named again (`--configfile config.yaml`) is one layer, not two
        if not any(os.path.realpath(path) == os.path.realpath(f) for f in files):
            files.append(path)
    merged: dict[str, Any] = {}
    for path in files:
        check_readable(path, "config")
        data = yamlfile.load(path, str(path)) or {}
        if not isinstance(data, dict):
            raise InputError(f"{path}: must be a mapping of keys to values")
        merge_config(merged, data)
    merge_config(merged, overrides)
    return merged, Sources.from_files(files, overrides)
