"""Gene annotation for SpliceAI scoring: the official spliceai 1.3.1 tables, GFF3 or GTF, and a fast gene lookup."""

from __future__ import annotations

import gzip
import os
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path

from aisci.errors import InputError
from aisci.gff import BinnedIndex, feature_rows, gff3_attributes, gtf_attributes, integer, lines, normalise_chrom
from aisci.splice.package import official_file

PACKAGED = ("grch37", "grch38")
COLUMNS = ("#NAME", "CHROM", "STRAND", "TX_START", "TX_END", "EXON_START", "EXON_END")
# Tag values that mark a gene's representative transcript (Ensembl/GENCODE, RefSeq, generic).
CANONICAL_TAGS = frozenset({"Ensembl_canonical", "MANE_Select", "MANE Select", "canonical"})


@dataclass(frozen=True)
class Gene:
    """One row of the official annotation table, in 1-based inclusive coordinates.

    ``exons`` ((start, end) pairs, 1-based) is carried only so `write_table` can write exon columns
    again; it is not part of equality, which (like scoring) depends on ``boundaries`` alone.
    """

    name: str
    chrom: str
    strand: str
    tx_start: int
    tx_end: int
    boundaries: tuple[int, ...]
    exons: tuple[tuple[int, int], ...] = field(default=(), compare=False, repr=False)

    def nearest_boundary(self, pos: int) -> int:
        """Signed distance from ``pos`` to the nearest exon boundary (boundary - pos).

        As the official ``min(np.union1d(starts, ends) - pos, key=abs)``: on a tie the first in
        sorted order, i.e. the upstream (negative) one, wins.

        Args:
            pos: 1-based position.

        Returns:
            ``b - pos`` for the nearest boundary ``b``.
        """
        b = self.boundaries
        i = bisect_left(b, pos)
        if i == 0:
            return b[0] - pos
        if i == len(b) or pos - b[i - 1] <= b[i] - pos:
            return b[i - 1] - pos
        return b[i] - pos


class Annotation:
    """A list of genes with a per-chromosome binned interval index for `genes_at`."""

    def __init__(self, source: str, genes: list[Gene]) -> None:
        self.source = source
        self.genes = genes
        self._index = BinnedIndex(genes, lambda g: (g.chrom, g.tx_start, g.tx_end))
        self._chrom_cache: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Annotation(source={self.source!r}, genes={len(self.genes)})"

    def _normalise(self, chrom: str) -> str:
        return normalise_chrom(chrom, self.genes[0].chrom)

    def genes_at(self, chrom: str, pos: int) -> list[Gene]:
        """Genes whose transcript span holds a position, as the official ``get_name_and_strand``.

        Args:
            chrom: chromosome as in the VCF; 'chr' is added or removed to match the annotation's
                first gene.
            pos: 1-based position.

        Returns:
            Genes with ``tx_start <= pos <= tx_end`` on that chromosome, in file order.
        """
        if not self.genes:
            return []
        key = self._chrom_cache.get(chrom)
        if key is None:
            key = self._chrom_cache[chrom] = self._normalise(chrom)
        return self._index.overlapping(key, pos, pos)


def packaged_table(name: str) -> Path:
    """Path of a gene table shipped with the spliceai package (grch37, grch38)."""
    return official_file(f"spliceai/annotations/{name}.txt", f"annotation '{name}' (or pass a table, GFF3 or GTF path)")


def load_annotation(spec: str) -> Annotation:
    """Load a gene annotation the way ``spliceai -A`` takes it.

    Args:
        spec: 'grch37' or 'grch38' (the tables in the installed spliceai 1.3.1 package), or a path
            to an official-format table (first line starts with '#NAME'), a GFF3 (.gff3/.gff) or a
            GTF (.gtf) file, each optionally gzipped.

    Returns:
        The genes, one per row (one chosen transcript per gene for GFF3/GTF), in file order.

    Raises:
        InputError: spliceai not installed for a packaged name, unreadable file, unknown format,
            or a malformed line (the message names the file and line).
    """
    path = packaged_table(spec) if spec in PACKAGED else Path(spec)
    first = next((line for _, line in lines(path) if line.strip()), "")
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    ext = suffixes[-1] if suffixes else ""
    if first.startswith("#NAME"):
        genes = _read_table(path)
    elif ext in (".gff3", ".gff") or first.startswith("##gff-version"):
        genes = _read_gff3(path)
    elif ext == ".gtf":
        genes = _read_gtf(path)
    else:
        raise InputError(f"{path}: not an annotation table (header '#NAME ...'), GFF3 (.gff3) or GTF (.gtf)")
    return Annotation(spec if spec in PACKAGED else str(path), genes)


def _int_list(path: Path, n: int, what: str, text: str) -> list[int]:
    text = text.strip().removesuffix(",")
    return [integer(path, n, what, v) for v in text.split(",")] if text else []


def _gene(
    name: str, chrom: str, strand: str, exons: list[tuple[int, int]], span: tuple[int, int] | None = None
) -> Gene:
    """A Gene from 1-based exons; the transcript span defaults to the exons' extent."""
    exons = sorted(exons)
    start, end = span or (exons[0][0], max(e for _, e in exons))
    bounds = tuple(sorted({b for exon in exons for b in exon}))
    return Gene(name, chrom, strand, start, end, bounds, tuple(exons))


def _read_table(path: Path) -> list[Gene]:
    rows = ((n, line) for n, line in lines(path) if line.strip())  # pandas skips blank lines
    hn, header = next(rows)
    cols = header.split("\t")
    missing = [c for c in COLUMNS if c not in cols]
    if missing:
        raise InputError(f"{path} line {hn}: header lacks column(s) {', '.join(missing)}")
    at = {c: cols.index(c) for c in COLUMNS}
    genes = []
    for n, line in rows:
        f = line.split("\t")
        if len(f) < len(cols):
            raise InputError(f"{path} line {n}: {len(f)} columns, header has {len(cols)} (missing {cols[len(f)]})")
        name, chrom, strand = f[at["#NAME"]], f[at["CHROM"]], f[at["STRAND"]]
        if strand not in ("+", "-"):
            raise InputError(f"{path} line {n}: STRAND '{strand}' must be + or -")
        span = (integer(path, n, "TX_START", f[at["TX_START"]]) + 1, integer(path, n, "TX_END", f[at["TX_END"]]))
        # The official takes re.split(',', s)[:-1], silently dropping the last exon when a list
        # lacks its trailing comma; we keep every listed value (identical on well-formed tables).
        starts, ends = (_int_list(path, n, c, f[at[c]]) for c in ("EXON_START", "EXON_END"))
        if len(starts) != len(ends):
            raise InputError(f"{path} line {n}: EXON_START has {len(starts)} values, EXON_END {len(ends)}")
        if not starts:
            raise InputError(f"{path} line {n}: gene '{name}' has no exons (EXON_START is empty)")
        genes.append(_gene(name, chrom, strand, [(s + 1, e) for s, e in zip(starts, ends)], span))
    return genes


def write_table(annotation: Annotation, path: str | os.PathLike[str]) -> None:
    """Write genes in the official table format (gzipped when ``path`` ends in .gz).

    Args:
        annotation: genes to write, e.g. converted once from a GFF3.
        path: output file.

    Raises:
        InputError: the file cannot be written.
    """
    path = Path(path)
    try:
        with gzip.open(path, "wt") if path.suffix == ".gz" else open(path, "w") as fh:
            fh.write("\t".join(COLUMNS) + "\n")
            for g in annotation.genes:
                # A Gene built by hand has no exons; one 1-bp "exon" per boundary gives the same
                # boundary set, which is all that scoring uses.
                exons = g.exons or tuple((b, b) for b in g.boundaries)
                starts, ends = "".join(f"{s - 1}," for s, _ in exons), "".join(f"{e}," for _, e in exons)
                fh.write(f"{g.name}\t{g.chrom}\t{g.strand}\t{g.tx_start - 1}\t{g.tx_end}\t{starts}\t{ends}\n")
    except OSError as exc:
        raise InputError(f"{path}: cannot write annotation table ({exc.strerror or exc})") from None


@dataclass
class _Tx:
    """One transcript being collected: its gene ID, place, tags and exons."""

    gene: str
    chrom: str
    strand: str
    tags: set[str]
    exons: list[tuple[int, int]] = field(default_factory=list)

    def add(self, path: Path, n: int, tx_id: str, f: list[str], start: int, end: int) -> None:
        if f[6] not in ("+", "-"):
            raise InputError(f"{path} line {n}: strand '{f[6]}' must be + or - (transcript '{tx_id}')")
        if (f[0], f[6]) != (self.chrom, self.strand):
            where = f"{self.chrom}{self.strand} and {f[0]}{f[6]}"
            raise InputError(f"{path} line {n}: transcript '{tx_id}' has exons on {where}")
        self.exons.append((start, end))


def _choose(txs: dict[str, _Tx], names: dict[str, str]) -> list[Gene]:
    """One Gene per gene of ``names`` (in its order): canonical transcript, else most exonic bases, else smallest ID."""
    by_gene: dict[str, list[tuple[bool, int, str, _Tx]]] = {}
    for tx_id, tx in txs.items():
        rank = (not tx.tags & CANONICAL_TAGS, -sum(e - s + 1 for s, e in tx.exons), tx_id, tx)
        by_gene.setdefault(tx.gene, []).append(rank)
    picks = [min(by_gene[gid], key=lambda r: r[:3])[3] for gid in names if gid in by_gene]
    return [_gene(names[tx.gene], tx.chrom, tx.strand, tx.exons) for tx in picks]


def _read_gff3(path: Path) -> list[Gene]:
    feats: dict[str, tuple[str, dict[str, str], int]] = {}  # ID -> (type, attributes, line)
    exons = []
    for n, f, start, end in feature_rows(path):
        attrs = gff3_attributes(f[8])
        if f[2] == "exon":
            exons.append((n, f, start, end, attrs))
        if "ID" in attrs:
            feats.setdefault(attrs["ID"], (f[2], attrs, n))

    def known(ref: str, n: int, what: str) -> tuple[str, dict[str, str], int]:
        if ref not in feats:
            raise InputError(f"{path} line {n}: {what} Parent '{ref}' is not the ID of any feature")
        return feats[ref]

    txs: dict[str, _Tx] = {}
    for n, f, start, end, attrs in exons:
        parents = [p for p in attrs.get("Parent", "").split(",") if p]
        if not parents:
            raise InputError(f"{path} line {n}: exon has no Parent attribute")
        for tx_id in parents:  # an exon shared by several transcripts lists them all
            kind, tx_attrs, tx_line = known(tx_id, n, "exon")
            if tx_id not in txs:
                # Exons directly under a gene (gene, ncRNA_gene, pseudogene) form one transcript.
                is_gene = kind in ("gene", "pseudogene") or kind.endswith("_gene")
                gene = tx_id if is_gene else (tx_attrs.get("Parent", "").split(",")[0] or tx_id)
                known(gene, tx_line, "transcript")
                txs[tx_id] = _Tx(gene, f[0], f[6], set(tx_attrs.get("tag", "").split(",")))
            txs[tx_id].add(path, n, tx_id, f, start, end)
    names = {}
    for gid in sorted({tx.gene for tx in txs.values()}, key=lambda g: feats[g][2]):
        attrs = feats[gid][1]
        names[gid] = attrs.get("gene_name") or attrs.get("Name") or gid
    return _choose(txs, names)


def _read_gtf(path: Path) -> list[Gene]:
    txs: dict[str, _Tx] = {}
    tags: dict[str, set[str]] = {}  # GENCODE repeats a transcript's tags on each of its lines
    names: dict[str, str] = {}  # gene_id -> name, in order of first appearance
    for n, f, start, end in feature_rows(path):
        attrs = gtf_attributes(f[8])
        gene_id, tx_id = attrs.get("gene_id", [""])[0], attrs.get("transcript_id", [""])[0]
        if gene_id and names.get(gene_id, gene_id) == gene_id:
            names[gene_id] = attrs.get("gene_name", [gene_id])[0]
        if tx_id:
            tags.setdefault(tx_id, set()).update(attrs.get("tag", []))
        if f[2] != "exon":
            continue
        if not gene_id or not tx_id:
            raise InputError(f"{path} line {n}: exon lacks {'transcript_id' if gene_id else 'gene_id'}")
        tx = txs.setdefault(tx_id, _Tx(gene_id, f[0], f[6], tags[tx_id]))
        if tx.gene != gene_id:
            raise InputError(f"{path} line {n}: transcript '{tx_id}' is in genes '{tx.gene}' and '{gene_id}'")
        tx.add(path, n, tx_id, f, start, end)
    return _choose(txs, names)
