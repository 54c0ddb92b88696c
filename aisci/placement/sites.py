"""Site descriptions for placement (sites.yaml): centres, their partitions, prices, backlogs, transfers."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

from aisci import yamlfile
from aisci.errors import InputError
from aisci.fileio import check_readable
from aisci.placement.model import Partition, Sites, Transfer
from aisci.schema import apply_defaults, describe_error, load_schema, schema_validator

_SLURM_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


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


def parse_sites(data: Any, source: str) -> tuple[Sites, dict[str, Any]]:
    """Validate a parsed site description and build the model.

    Args:
        data: the parsed YAML.
        source: how to name it in messages (its file name).

    Returns:
        The sites, and the Slurm settings of the profile to write (site.schema.yaml keys, defaults filled).

    Raises:
        InputError: naming the file and the key at fault.
    """
    if not isinstance(data, dict):
        raise InputError(f"{source}: must be a mapping")
    yamlfile.check_plain(data, source)
    errors = sorted(schema_validator("sites").iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise InputError(describe_error(errors[0], source))
    data = copy.deepcopy(data)
    apply_defaults(load_schema("sites"), data)
    centres = data["centres"]
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
    partition_schema = load_schema("sites")["properties"]["centres"]["additionalProperties"]["properties"][
        "partitions"]["additionalProperties"]
    for cname, centre in centres.items():
        if cname != home and cname not in transfers:
            raise InputError(f"{source}: centres.{cname}: no transfer from {home} to {cname} (add one under transfers)")
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
                gpus=p["gpus"], gpu_model=p["gpu_model"], max_walltime_s=walltime,
                core_hour_cost=float(p["core_hour_cost"]), gpu_hour_cost=float(p["gpu_hour_cost"]),
                queue_wait_s=60.0 * p["queue_wait"],
                slurm_cluster=centre.get("slurm_cluster"),
            ))
    slurm = dict(data["slurm"])
    slurm_site = {**slurm, "partitions": {"x": {"cpus": 1, "mem_gb": 1}}}
    errors = sorted(schema_validator("site").iter_errors(slurm_site), key=lambda e: list(e.absolute_path))
    if errors:
        raise InputError(describe_error(errors[0], f"{source}: slurm"))
    apply_defaults(load_schema("site"), slurm)
    slurm.pop("partitions", None)
    return Sites(home=home, partitions=tuple(partitions), transfers=transfers), {"name": data.get("name", "sites"), **slurm}


def load_sites(path: Path) -> tuple[Sites, dict[str, Any]]:
    """Read and validate a site description (aisci/schemas/sites.schema.yaml).

    Raises:
        InputError: naming the file and the key at fault (aliases, non-UTF-8 text and bad YAML too).
    """
    check_readable(path, "site description")
    return parse_sites(yamlfile.load(path), path.name)
