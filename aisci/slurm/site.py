"""The site description (site.yaml): centres, their partitions, prices, backlogs, transfers and profile settings.

One format serves `aisci profile new` (the home centre's profile) and `aisci plan` /
`aisci simulate-cluster` (every centre); schema: aisci/schemas/site.schema.yaml.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aisci import yamlfile
from aisci.errors import InputError
from aisci.fileio import check_readable
from aisci.schema import apply_defaults, describe_error, load_schema, schema_validator

# The keys of the profiles written from a site (top level of site.yaml), with their defaults filled.
SETTINGS = ("account", "qos", "max_jobs", "latency_wait", "retries", "status_command", "first_status_check",
            "default_runtime")

# Keys of the two formats this one replaced: each is refused with what to write instead.
_OLD_TOP = {
    "partitions": "now under centres.<centre>.partitions (one centre for a single cluster), "
                  "with cores, max_walltime and gpu_models for cpus, max_runtime and gpu_model, and nodes",
    "slurm": "its keys (account, qos, max_jobs, ...) now sit at the top level of the site description",
}
_OLD_PARTITION = {"cpus": "cores", "max_runtime": "max_walltime", "gpu_model": "gpu_models (a list)"}

_SLURM_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


@dataclass(frozen=True)
class Partition:
    """One partition of one centre. Sizes are per node; costs per core-hour and GPU-hour."""

    centre: str
    name: str  # the Slurm partition name
    nodes: int
    cores: int
    mem_mb: int
    gpus: int = 0
    gpu_models: tuple[str, ...] = ()
    max_walltime_s: float = math.inf
    core_hour_cost: float = 0.0
    gpu_hour_cost: float = 0.0
    queue_wait_s: float = 0.0  # expected wait before its first job starts (the backlog)
    slurm_cluster: str | None = None  # sbatch --clusters, for a partner centre reached by multi-cluster Slurm

    @property
    def id(self) -> str:
        """``centre/name``: unique across centres."""
        return f"{self.centre}/{self.name}"

    @property
    def total_cores(self) -> int:
        return self.nodes * self.cores

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus

    def per_node(self, threads: int, mem_mb: int, gpus: int) -> int:
        """How many jobs of this shape fit on one node at once (0: it fits nowhere here)."""
        fits = [self.cores // max(threads, 1), self.mem_mb // max(mem_mb, 1)]
        if gpus:
            fits.append(self.gpus // gpus)
        return max(0, min(fits))

    def slots(self, threads: int, mem_mb: int, gpus: int) -> int:
        """How many jobs of this shape the partition runs at once."""
        return self.nodes * self.per_node(threads, mem_mb, gpus)


@dataclass(frozen=True)
class Transfer:
    """Moving job inputs from the home centre to another centre: price and bandwidth."""

    cost_per_gb: float = 0.0
    gbit_s: float = math.inf

    def seconds(self, nbytes: float) -> float:
        return 0.0 if math.isinf(self.gbit_s) else nbytes * 8 / (self.gbit_s * 1e9)

    def cost(self, nbytes: float) -> float:
        return self.cost_per_gb * nbytes / 1e9


def _default_settings() -> dict[str, Any]:
    schema = load_schema("site")["properties"]
    return {key: schema[key]["default"] for key in SETTINGS}


@dataclass(frozen=True)
class Site:
    """Every partition of every centre; the data lives at ``home``; ``settings`` are the profiles' (SETTINGS)."""

    home: str
    partitions: tuple[Partition, ...]
    transfers: Mapping[str, Transfer] = field(default_factory=dict)  # centre -> from home to it
    name: str = "site"
    settings: Mapping[str, Any] = field(default_factory=_default_settings)
    model_stores: Mapping[str, str | None] = field(default_factory=dict)  # centre -> its model store's path
    references: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # centre -> name -> path
    # centre -> its staging (paths, host, bwlimit_kb) when it shares no file system with home
    staging: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def centres(self) -> list[str]:
        """Every centre, home first."""
        return list(dict.fromkeys([self.home, *(p.centre for p in self.partitions)]))

    def partition(self, pid: str) -> Partition:
        for p in self.partitions:
            if p.id == pid:
                return p
        raise KeyError(pid)

    def transfer(self, centre: str) -> Transfer:
        """Transfer from home to ``centre`` (free and instant at home)."""
        if centre == self.home:
            return Transfer()
        return self.transfers.get(centre, Transfer())

    @property
    def home_partitions(self) -> tuple[Partition, ...]:
        """The home centre's partitions: the ones `aisci profile new` writes a profile for."""
        return tuple(p for p in self.partitions if p.centre == self.home)


def slurm_minutes(value: int | str, where: str) -> float:
    """Minutes of a Slurm time limit: ``90``, ``"90"``, ``"1:30:00"``, ``"2-00:00:00"``, ``"2-12"``.

    Raises:
        InputError: naming ``where`` for anything else.
    """
    if isinstance(value, int):
        if value <= 0:
            raise InputError(f"{where}: {value} must be a positive number of minutes")
        return float(value)
    text = str(value).strip()
    if text in ("infinite", "UNLIMITED"):
        return math.inf
    m = _SLURM_TIME.match(text)
    if not m:
        raise InputError(f"{where}: {value!r} is not a Slurm time (minutes, H:MM:SS or D-HH:MM:SS)")
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:  # D-H, D-H:M, D-H:M:S
        minutes = days * 1440 + a * 60 + (b or 0) + (c or 0) / 60
    elif c is not None:  # H:M:S
        minutes = a * 60 + b + c / 60
    elif b is not None:  # M:S
        minutes = a + b / 60
    else:
        minutes = float(a)
    if minutes <= 0:
        raise InputError(f"{where}: {value!r} must be longer than zero")
    return minutes


def _refuse_old_keys(data: dict[str, Any], source: str) -> None:
    """One line naming the first key of the two older site formats, and what to write instead."""
    for key, instead in _OLD_TOP.items():
        if key in data:
            raise InputError(f"{source}: {key}: {instead}")
    centres = data.get("centres")
    if not isinstance(centres, dict):
        return
    for cname, centre in centres.items():
        parts = centre.get("partitions") if isinstance(centre, dict) else None
        for pname, part in (parts or {}).items() if isinstance(parts, dict) else ():
            for old, new in _OLD_PARTITION.items():
                if isinstance(part, dict) and old in part:
                    raise InputError(f"{source}: centres.{cname}.partitions.{pname}.{old}: now called {new}")


def parse_site(data: Any, source: str) -> Site:
    """Validate a parsed site description and build the model.

    Args:
        data: the parsed YAML.
        source: how to name it in messages (its file name).

    Raises:
        InputError: naming the file and the key at fault.
    """
    if not isinstance(data, dict):
        raise InputError(f"{source}: must be a mapping")
    yamlfile.check_plain(data, source)
    _refuse_old_keys(data, source)
    errors = sorted(schema_validator("site").iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise InputError(describe_error(errors[0], source))
    data = copy.deepcopy(data)
    apply_defaults(load_schema("site"), data)
    centres = data["centres"]
    if "home" not in data:
        if len(centres) > 1:
            raise InputError(f"{source}: home: required with more than one centre (the centre where the data lives; "
                             f"one of {', '.join(centres)})")
        data["home"] = next(iter(centres))
    home = data["home"]
    if home not in centres:
        raise InputError(f"{source}: home: {home!r} is not a centre (centres: {', '.join(centres)})")
    transfers: dict[str, Transfer] = {}
    for i, t in enumerate(data["transfers"]):
        where = f"{source}: transfers.{i}"
        for end in ("from", "to"):
            if t[end] not in centres:
                raise InputError(f"{where}.{end}: {t[end]!r} is not a centre")
        if t["from"] != home:
            continue  # data only ever leaves the home centre
        transfers[t["to"]] = Transfer(cost_per_gb=t.get("cost_per_gb", 0.0), gbit_s=t.get("gbit_s", 10.0))
    partitions = []
    partition_schema = load_schema("site")["properties"]["centres"]["additionalProperties"]["properties"][
        "partitions"]["additionalProperties"]
    for cname, centre in centres.items():
        if cname != home and cname not in transfers:
            raise InputError(f"{source}: centres.{cname}: no transfer from {home} to {cname} (add one under transfers)")
        if cname == home and centre.get("staging"):
            raise InputError(f"{source}: centres.{cname}.staging: the home centre is where the data lives; only a "
                             "partner centre can lack a file system shared with it")
        if len(centres) > 1 and not centre.get("slurm_cluster"):
            raise InputError(
                f"{source}: centres.{cname}.slurm_cluster: with partner centres every centre needs the Slurm "
                "cluster name its jobs are submitted to (sbatch --clusters), the home centre too: a rule "
                "split between centres lists both"
            )
        for pname, p in centre["partitions"].items():
            apply_defaults(partition_schema, p)
            walltime = math.inf
            if "max_walltime" in p:
                walltime = 60 * slurm_minutes(p["max_walltime"], f"{source}: centres.{cname}.partitions.{pname}.max_walltime")
            partitions.append(Partition(
                centre=cname, name=pname, nodes=p["nodes"], cores=p["cores"], mem_mb=int(p["mem_gb"] * 1024),
                gpus=p["gpus"], gpu_models=tuple(p["gpu_models"]), max_walltime_s=walltime,
                core_hour_cost=float(p["core_hour_cost"]), gpu_hour_cost=float(p["gpu_hour_cost"]),
                queue_wait_s=60.0 * p["queue_wait"],
                slurm_cluster=centre.get("slurm_cluster"),
            ))
    return Site(home=home, partitions=tuple(partitions), transfers=transfers, name=data.get("name", "site"),
                settings={key: data[key] for key in SETTINGS},
                model_stores={c: centre.get("model_store") for c, centre in centres.items()},
                references={c: dict(centre.get("references", {})) for c, centre in centres.items()},
                staging={c: centre["staging"] for c, centre in centres.items() if centre.get("staging")})


def load_site(path: Path) -> Site:
    """Read and validate a site description (aisci/schemas/site.schema.yaml).

    Raises:
        InputError: naming the file and the key at fault (aliases, non-UTF-8 text and bad YAML too).
    """
    check_readable(path, "site description")
    return parse_site(yamlfile.load(path), path.name)
