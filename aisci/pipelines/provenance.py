"""Provenance of a run: what ran (versions, models, config, samples, command) and VCF headers that say so."""

from __future__ import annotations

import argparse
import datetime
import getpass
import gzip
import hashlib
import importlib.metadata as metadata
import json
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterable, Sequence

from aisci import __version__
from aisci.errors import InputError, ToolError
from aisci.fileio import atomic_output, is_gzipped, sha256

PathLike = str | os.PathLike[str]
TOOLS = ("minimap2", "bwa", "samtools", "bcftools", "tabix", "bgzip")
MD5_MAX_BASES = 200_000_000  # "where cheap": ~1 s of MD5; a human genome (3.1 Gb) is left out
_FIXED = ("versions.json", "config.yaml", "command.txt", "run.json", "models.json", "release.json")
_VERSION = re.compile(r"\d+\.\d+[^\s,;)]*")
_CHUNK = 10_000_000  # bases read at a time when hashing a sequence


def tool_versions(tools: Iterable[str] = TOOLS, timeout: float = 10.0) -> dict[str, str | None]:
    """Version of each tool binary on PATH.

    Args:
        tools: binary names; bwa runs without arguments (its usage says ``Version:``; it exits 1), the others
            with ``--version``.
        timeout: seconds allowed per call.

    Returns:
        name -> version (``2.24-r1122``); None when not on PATH, ``unknown`` when it ran but named no version.
    """
    found: dict[str, str | None] = {}
    for tool in tools:
        exe = shutil.which(tool)
        if exe is None:
            found[tool] = None
            continue
        try:
            proc = subprocess.run([exe] if tool == "bwa" else [exe, "--version"], stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, errors="replace", timeout=timeout, check=False)
            text = (proc.stdout + "\n" + proc.stderr).strip()
        except (OSError, subprocess.TimeoutExpired):
            text = ""
        tagged = re.search(r"^Version:\s*(\S+)", text, re.MULTILINE)
        first = _VERSION.search(text.splitlines()[0]) if text else None
        found[tool] = tagged.group(1) if tagged else first.group(0) if first else "unknown"
    return found


def python_versions() -> dict[str, str | None]:
    """Versions of Python, aisci and each dependency aisci's metadata declares (extras' ones, e.g. pytest, left out).

    Returns:
        ``python``, ``aisci``, then each dependency as declared -> installed version (None: not installed).
    """
    found: dict[str, str | None] = {"python": platform.python_version(), "aisci": __version__}
    try:
        requires = metadata.requires("aisci") or []
    except metadata.PackageNotFoundError:  # a source tree on sys.path, not installed: no metadata
        requires = []
    for req in requires:
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if name is None or re.search(r"\bextra\s*==", req.partition(";")[2]):
            continue
        try:
            found[name.group(1)] = metadata.version(name.group(1))
        except metadata.PackageNotFoundError:
            found[name.group(1)] = None
    return found


def _write(path: Path, data: bytes | str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str) + "\n"


def _yaml(config: dict[str, Any]) -> str:
    import yaml

    try:
        return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    except yaml.representer.RepresenterError:  # a Path or other object in a Snakemake config: keep its text
        return yaml.safe_dump(json.loads(json.dumps(config, default=str)), sort_keys=False, allow_unicode=True)


def _models(manifests: Iterable[PathLike], splice_weights: PathLike | None) -> dict[str, Any]:
    from aisci.protein.store import MANIFEST, read_manifest
    from aisci.splice.weights import SPLICEAI, weights_dir

    stores = []
    for given in manifests:
        path = Path(given) / MANIFEST if Path(given).is_dir() else Path(given)
        if not path.is_file():
            raise InputError(f"model store manifest {path}: file not found")
        stores.append({"manifest": str(path.resolve()), "content": read_manifest(path.parent)})
    spliceai = None
    if splice_weights is not None:
        folder = weights_dir(splice_weights)
        if not folder.is_dir():
            raise InputError(f"SpliceAI weights {folder}: folder not found")
        hashes = {p.name: sha256(p) for p in sorted(folder.glob("spliceai*.h5"))}
        official = bool(hashes) and all(SPLICEAI.sha256.get(n) == h for n, h in hashes.items())
        spliceai = {"dir": str(folder.resolve()), "sha256": hashes, "official": official}
    return {"model_stores": stores, "spliceai": spliceai}


def snakemake_command(pid: int | None = None) -> list[str]:
    """The command line of the Snakemake process this one runs under (a local rule's job is its child).

    Read from /proc, walking up the parents; a rule cannot pass it as a param without every change of
    command line (``-n``, ``--forcerun``) re-running the rule. Returns [] where it cannot be found.
    """
    pid = os.getppid() if pid is None else pid
    for _ in range(8):
        try:
            argv = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return []
        if any(Path(a).name == "snakemake" or a == "snakemake" for a in argv[:3]):
            return argv
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the command name: state, then ppid
        if pid <= 1:
            return []
    return []


def write_pipeline_info(out_dir: PathLike, *, config: dict[str, Any], configfiles: Sequence[PathLike],
                        samples_sheet: PathLike | None, command: Sequence[str], run_id: str | None = None,
                        model_manifests: Sequence[PathLike] = (), splice_weights: PathLike | None = None,
                        release: PathLike | None = None) -> Path:
    """Write what a run is made of into ``out_dir``, each file atomically (a temporary name, then os.replace).

    Files: versions.json, config.yaml, the sample sheet byte for byte under its own name, command.txt, run.json
    (id, UTC time, host, user, working directory, config files' SHA-256), models.json (store manifests, SpliceAI
    weights' SHA-256).

    Args:
        out_dir: folder to write (created when missing), e.g. results/pipeline_info.
        config: the resolved config, as the workflow uses it.
        configfiles: the config files given to the run, as given.
        samples_sheet: the sample sheet, or None.
        command: the run's command line (argv).
        run_id: the run's id (default: a new uuid4 hex).
        model_manifests: model store manifest.json files (or store folders).
        splice_weights: folder of the SpliceAI .h5 files to hash (see `aisci.splice.weights.weights_dir`), or None.
        release: the release.json of the installed catalog release the run's pipeline comes from, or None;
            release.json here then names it (pipeline, version, content digest, catalog).

    Returns:
        ``out_dir`` as a Path.

    Raises:
        InputError: a config file, the sample sheet, a manifest or the weights folder is missing or unreadable.
    """
    out = Path(out_dir)
    files = []
    for given in configfiles:
        if not Path(given).is_file():
            raise InputError(f"config file {given}: file not found")
        files.append({"path": str(given), "sha256": sha256(Path(given))})
    models = _models(model_manifests, splice_weights)
    if samples_sheet is not None:
        sheet = Path(samples_sheet)
        try:
            data = sheet.read_bytes()
        except OSError as exc:
            raise InputError(f"sample sheet {sheet}: cannot read ({exc.strerror or exc})") from None
        _write(out / (sheet.name if sheet.name not in _FIXED else f"samples{sheet.suffix}"), data)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = str(os.getuid())
    run = {"run_id": run_id or uuid.uuid4().hex, "host": socket.gethostname(), "user": user, "cwd": os.getcwd(),
           "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "configfiles": files}
    versions = {"aisci": __version__, "tools": tool_versions(), "python": python_versions(),
                "tool_paths": {t: shutil.which(t) for t in TOOLS}}
    _write(out / "versions.json", _json(versions))
    _write(out / "config.yaml", _yaml(config))
    _write(out / "command.txt", shlex.join(command) + "\n")
    _write(out / "run.json", _json(run))
    _write(out / "models.json", _json(models))
    if release is not None:
        _write(out / "release.json", _json(_release(release)))
    return out


def _release(path: PathLike) -> dict[str, Any]:
    """What pipeline_info records of a catalog release: its name, version, digest, catalog and files' count."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"release {path}: cannot read ({exc})") from None
    keep = ("name", "version", "digest", "published", "installed_from")
    return {**{k: record.get(k) for k in keep}, "files": len(record.get("files", {})), "release_json": str(path)}


def read_fai(fai: PathLike) -> list[tuple[str, int]]:
    """The (name, length) of each sequence of a FASTA index, in file order.

    Raises:
        InputError: the file cannot be read or a line is not a .fai line (naming the line).
    """
    from aisci.germline.reference import read_fai as read_contigs_of_fai

    try:
        return [(c.name, c.length) for c in read_contigs_of_fai(fai)]
    except OSError as exc:
        raise InputError(f"{fai}: cannot read the FASTA index ({exc.strerror or exc})") from None


def contig_md5s(fasta: PathLike, fai: PathLike | None = None, max_bases: int = MD5_MAX_BASES) -> dict[str, str]:
    """MD5 of each sequence as the SAM spec's M5 defines it (uppercase, no newlines), read at the .fai offsets.

    Args:
        fasta: the reference FASTA (plain, or bgzip with its .gzi).
        fai: its index (default ``FASTA.fai``).
        max_bases: compute only for a genome at most this long ("where cheap").

    Returns:
        contig name -> hex MD5 in .fai order; {} for a genome over ``max_bases``.
    """
    import pysam

    fai = Path(fai) if fai is not None else Path(f"{fasta}.fai")
    contigs = read_fai(fai)
    if sum(length for _, length in contigs) > max_bases:
        return {}
    md5s = {}
    with pysam.FastaFile(str(fasta), filepath_index=str(fai)) as fa:
        for name, length in contigs:
            h = hashlib.md5(usedforsecurity=False)
            for start in range(0, length, _CHUNK):
                h.update(fa.fetch(name, start, min(start + _CHUNK, length)).upper().encode())
            md5s[name] = h.hexdigest()
    return md5s


def vcf_header_lines(fai_path: PathLike, reference_name: str, *, md5: dict[str, str] | None = None) -> list[str]:
    """``##source=aisci <version>``, ``##reference=<file name>`` and one ``##contig`` per .fai line, in order.

    Args:
        fai_path: the reference's .fai.
        reference_name: the reference's file name; a path or ``file://`` URL is cut to its last part.
        md5: contig -> MD5 (see `contig_md5s`); a contig without one gets no ``md5=``.

    Returns:
        The lines, without newlines.
    """
    md5 = md5 or {}
    lines = [f"##source=aisci {__version__}", f"##reference={Path(reference_name.rstrip('/')).name}"]
    for name, length in read_fai(fai_path):
        lines.append(f"##contig=<ID={name},length={length}{f',md5={md5[name]}' if name in md5 else ''}>")
    return lines


def _kind(line: bytes) -> str | None:
    return next((k for k in ("source", "reference", "contig") if line.startswith(f"##{k}=".encode())), None)


def reheader_vcf(vcf_in: PathLike, vcf_out: PathLike, fai: PathLike, reference_name: str,
                 md5s: dict[str, str] | None = None) -> Path:
    """Copy a VCF with its ``##source``, ``##reference`` and ``##contig`` lines replaced by `vcf_header_lines`.

    Other header lines keep their order; records are copied byte for byte. The output is bgzipped and
    tabix-indexed (``vcf_out.tbi``), each moved into place only when complete.

    Args:
        vcf_in: input VCF (plain or bgzip).
        vcf_out: output .vcf.gz.
        fai: the reference's .fai.
        reference_name: the reference's file name.
        md5s: contig -> MD5 for the ``##contig`` lines.

    Returns:
        ``vcf_out`` as a Path.

    Raises:
        InputError: no ``#CHROM`` line, or a record on a contig the reference lacks.
        ToolError: tabix cannot index the output (records not sorted).
    """
    import pysam

    new: dict[str, list[bytes]] = {"source": [], "reference": [], "contig": []}
    for line in vcf_header_lines(fai, reference_name, md5=md5s):
        new[str(_kind(line.encode()))].append(line.encode() + b"\n")
    known = {name.encode() for name, _ in read_fai(fai)}
    out = Path(vcf_out)
    src = gzip.open(vcf_in, "rb") if is_gzipped(vcf_in) else open(vcf_in, "rb")
    tmp_tbi: Path | None = None
    try:
        with src, atomic_output(out) as tmp:
            with pysam.BGZFile(str(tmp), "wb") as dst:
                for line in src:
                    if line.startswith(b"#CHROM"):  # the kinds the input lacked go here
                        dst.write(b"".join(b"".join(lines) for lines in new.values()) + line)
                        break
                    kind = _kind(line)  # a kind's new lines go where its first line was; its others go
                    dst.write(line if kind is None else b"".join(new[kind]))
                    if kind is not None:
                        new[kind] = []
                else:
                    raise InputError(f"{vcf_in}: no #CHROM line: not a VCF")
                last = None
                for line in src:
                    chrom = line.split(b"\t", 1)[0]
                    if chrom != last and chrom.strip() and chrom not in known:
                        raise InputError(f"{vcf_in}: a record on contig {chrom.decode(errors='replace')!r}, "
                                         f"which the reference ({Path(fai).name}) does not have")
                    last = chrom
                    dst.write(line)
            tmp_tbi = Path(f"{tmp}.tbi")
            try:
                pysam.tabix_index(str(tmp), preset="vcf", force=True, index=str(tmp_tbi))
            except (OSError, ValueError):
                raise ToolError(f"{vcf_in}: tabix cannot index the output: are the records sorted?") from None
        os.replace(tmp_tbi, f"{out}.tbi")  # after the VCF: htslib warns of an index older than its data
    finally:
        if tmp_tbi is not None and tmp_tbi.exists():
            tmp_tbi.unlink()
    return out


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Register `info` and `header` under `aisci provenance`."""
    sub = parser.add_subparsers(dest="provenance_command", metavar="ACTION", required=True)
    i = sub.add_parser("info", help="write what a run is made of into a folder (results/pipeline_info)")
    i.add_argument("--out", required=True, help="folder to write")
    source = i.add_mutually_exclusive_group(required=True)
    source.add_argument("--resolved-config", metavar="FILE", help="the resolved config (YAML or JSON file)")
    source.add_argument("--resolved-config-json", metavar="JSON",
                        help="the resolved config as JSON text (what a rule passes)")
    i.add_argument("--configfile", nargs="*", action="extend", default=[], metavar="FILE",
                   help="the config files given to the run (one or more; repeatable)")
    i.add_argument("--samples", help="the sample sheet (copied byte for byte)")
    i.add_argument("--run-id", help="the run's id (default: a new uuid4 hex)")
    i.add_argument("--model-manifest", action="append", default=[], help="a model store's manifest.json or folder "
                   "(repeatable)")
    i.add_argument("--splice-weights", nargs="?", const="", metavar="DIR", help="hash the SpliceAI .h5 files of "
                   "DIR (the flag alone: $AISCI_SPLICEAI_WEIGHTS, else the spliceai package's)")
    i.add_argument("--release", metavar="RELEASE_JSON", help="the installed catalog release the pipeline runs from")
    i.add_argument("--command", nargs=argparse.REMAINDER, default=None,
                   help="the run's command line (last option; default: that of the Snakemake process running this job)")
    h = sub.add_parser("header", help="rewrite a VCF's source, reference and contig header lines; bgzip and index")
    h.add_argument("--vcf", required=True, help="input VCF (plain or bgzip)")
    h.add_argument("--out", required=True, help="output .vcf.gz (+ .tbi)")
    h.add_argument("--fai", required=True, help="the reference's .fai")
    h.add_argument("--ref", help="the reference FASTA, for contig MD5s (default: --fai without .fai)")
    h.add_argument("--reference-name", help="file name for ##reference (default: that of --ref)")
    h.add_argument("--md5-max-bases", type=int, default=MD5_MAX_BASES,
                   help=f"contig MD5s when the genome is at most this long (default {MD5_MAX_BASES:,}; 0: none)")


def run(args: argparse.Namespace) -> int:
    """Dispatch to `info` or `header`."""
    if args.provenance_command == "info":
        from aisci import yamlfile
        from aisci.splice.weights import weights_dir

        config = (json.loads(args.resolved_config_json) if args.resolved_config_json is not None
                  else yamlfile.load(args.resolved_config))
        if not isinstance(config, dict):
            raise InputError(f"{args.resolved_config}: not a config (a mapping of keys to values)")
        weights = weights_dir(None) if args.splice_weights == "" else args.splice_weights
        out = write_pipeline_info(args.out, config=config, configfiles=args.configfile, samples_sheet=args.samples,
                                  command=args.command if args.command is not None else snakemake_command(),
                                  run_id=args.run_id, model_manifests=args.model_manifest,
                                  splice_weights=weights, release=args.release)
        print(f"pipeline info written to {out}")
        return 0
    fai = Path(args.fai)
    ref = Path(args.ref) if args.ref else fai.with_suffix("") if fai.suffix == ".fai" else None
    md5s = contig_md5s(ref, fai, args.md5_max_bases) if ref is not None and ref.is_file() else {}
    name = args.reference_name or (ref.name if ref is not None else fai.name)
    out = reheader_vcf(args.vcf, args.out, fai, name, md5s)
    print(f"{out}: {len(read_fai(fai))} contigs ({len(md5s)} with MD5), reference {Path(name).name}")
    return 0
