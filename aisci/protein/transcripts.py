"""Transcript models (exons, CDS with phases) from GFF3 or GTF, with a binned overlap index."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from aisci.errors import InputError
from aisci.gff import BinnedIndex, feature_rows, gff3_attributes, gtf_attributes, lines

log = logging.getLogger(__name__)

_PARTS = ("exon", "CDS", "stop_codon")  # features that make a transcript; start_codon/UTR lines are implied
_TX_BIOTYPE = ("transcript_biotype", "transcript_type", "biotype")
_GENE_BIOTYPE = ("gene_biotype", "gene_type", "biotype")


@dataclass(frozen=True)
class Transcript:
    """One transcript in 1-based closed coordinates; intervals are in ascending genomic order.

    ``cds`` holds (start, end, phase) segments, stop codon included (GTF stop_codon lines are merged
    in). ``translatable`` is False when the CDS phases disagree with the segment lengths (ribosomal
    slippage, broken models): such a transcript keeps its CDS/UTR regions but gets no protein change.
    """

    id: str
    gene: str
    gene_id: str
    chrom: str
    strand: str
    exons: tuple[tuple[int, int], ...]
    cds: tuple[tuple[int, int, int], ...] = ()
    biotype: str | None = None
    translatable: bool = field(default=True, compare=False)

    @property
    def start(self) -> int:
        """First base of the transcript (lowest coordinate)."""
        return self.exons[0][0]

    @property
    def end(self) -> int:
        """Last base of the transcript (highest coordinate)."""
        return self.exons[-1][1]

    @property
    def coding(self) -> bool:
        """Whether the transcript has a CDS."""
        return bool(self.cds)

    def in_order(self) -> tuple[tuple[int, int], ...]:
        """The exons in transcript (5' to 3') order."""
        return self.exons if self.strand == "+" else self.exons[::-1]

    def introns(self) -> list[tuple[int, int]]:
        """Introns (start, end), ascending; exons that abut leave no intron."""
        return [(a[1] + 1, b[0] - 1) for a, b in zip(self.exons, self.exons[1:]) if b[0] > a[1] + 1]


class TranscriptSet:
    """Transcripts with a per-chromosome binned index for `overlapping`."""

    def __init__(self, source: str, transcripts: list[Transcript]) -> None:
        self.source = source
        self.transcripts = transcripts
        self._index = BinnedIndex(transcripts, lambda t: (t.chrom, t.start, t.end))
        self._chrom: dict[str, str | None] = {}

    def __len__(self) -> int:
        return len(self.transcripts)

    def __iter__(self):
        return iter(self.transcripts)

    def __repr__(self) -> str:
        return f"TranscriptSet(source={self.source!r}, transcripts={len(self.transcripts)})"

    def overlapping(self, chrom: str, start: int, end: int) -> list[Transcript]:
        """Transcripts whose span (first to last exon base) overlaps [start, end].

        Args:
            chrom: chromosome; a 'chr' prefix is added or dropped when only the other spelling is annotated.
            start: 1-based first position.
            end: 1-based last position (>= start).

        Returns:
            The overlapping transcripts in file order, each once.
        """
        if chrom not in self._chrom:
            self._chrom[chrom] = self._index.resolve(chrom)
        key = self._chrom[chrom]
        if key is None:
            return []
        found = self._index.overlapping(key, start, end)
        order = {id(t): i for i, t in enumerate(found)}
        return sorted(found, key=lambda t: (t.start, t.id, order[id(t)]))


def load_transcripts(path: str | os.PathLike[str]) -> TranscriptSet:
    """Read every transcript of a GFF3 or GTF file (plain or gzipped).

    GFF3: a transcript is any feature that is the Parent of exon/CDS lines (exons directly under a gene
    make the gene its own transcript); its ID is the ``transcript_id`` attribute, else ``ID``; the gene
    is its Parent (name: gene ``Name``, else its ID; gene_id: gene ``gene_id``, else ``ID``).
    GTF: transcripts by ``transcript_id``; gene name ``gene_name``, else ``gene_id``.
    GTF CDS lines exclude the stop codon: ``stop_codon`` lines are merged into the CDS.

    Args:
        path: annotation file; the format is taken from the extension (.gff3/.gff/.gtf) or the content.

    Returns:
        The transcripts in order of first appearance.

    Raises:
        InputError: unreadable or unknown format, or a bad line (the message names file and line):
            wrong column count, bad coordinates, strand or phase, unknown Parent, a part on another
            chromosome or strand than its transcript, overlapping exons, CDS outside the exons.
    """
    path = Path(path)
    first = next((line for _, line in lines(path) if line.strip() and not line.startswith("#!")), "")
    ext = next((s.lower() for s in reversed(path.suffixes) if s.lower() != ".gz"), "")
    feature = next((line for _, line in lines(path) if line.strip() and not line.startswith("#")), "")
    column9 = feature.split("\t")[8] if feature.count("\t") == 8 else ""
    if first.startswith("##gff-version") or ext in (".gff3", ".gff"):
        reader = _read_gff3
    elif ext == ".gtf" or "_id \"" in column9:
        reader = _read_gtf
    elif "=" in column9:
        reader = _read_gff3
    else:
        raise InputError(f"{path}: not a GFF3 (.gff3, '##gff-version 3') or GTF (.gtf) annotation")
    transcripts = reader(path)
    log.info("%s: %d transcripts (%d coding)", path, len(transcripts), sum(t.coding for t in transcripts))
    return TranscriptSet(str(path), transcripts)


@dataclass
class _Draft:
    """A transcript being collected: identity, place and its part lines (line, start, end, phase)."""

    id: str
    gene: str
    gene_id: str
    chrom: str
    strand: str
    line: int
    biotype: str | None = None
    exons: list[tuple[int, int, int]] = field(default_factory=list)
    cds: list[tuple[int, int, int, int]] = field(default_factory=list)
    stops: list[tuple[int, int, int, int]] = field(default_factory=list)

    def add(self, path: Path, n: int, f: list[str], start: int, end: int) -> None:
        """Check a part line against the transcript and keep it."""
        if f[6] not in ("+", "-"):
            raise InputError(f"{path} line {n}: strand '{f[6]}' must be + or - ({f[2]} of transcript '{self.id}')")
        if (f[0], f[6]) != (self.chrom, self.strand):
            raise InputError(f"{path} line {n}: {f[2]} on {f[0]}{f[6]} but its transcript '{self.id}' "
                             f"(line {self.line}) is on {self.chrom}{self.strand}")
        if f[2] == "exon":
            self.exons.append((n, start, end))
            return
        if f[7] not in ("0", "1", "2") and f[2] == "CDS":
            raise InputError(f"{path} line {n}: phase '{f[7]}' of {f[2]} must be 0, 1 or 2 (transcript '{self.id}')")
        if f[2] == "CDS":
            self.cds.append((n, start, end, int(f[7])))
        else:  # a stop codon carries no residue: its phase is derived (-1), whatever the file says
            self.stops.append((n, start, end, -1))

    def build(self, path: Path) -> Transcript:
        """The finished Transcript; checks exons and CDS and merges stop codons into the CDS."""
        exons = sorted(self.exons, key=lambda e: e[1:])
        for (_, _, end), (n, start, _) in pairwise(exons):
            if start <= end:
                raise InputError(f"{path} line {n}: exon {start}- overlaps the previous exon of transcript "
                                 f"'{self.id}' (ends at {end})")
        cds = sorted(self.cds, key=lambda c: c[1:3])
        for n, start, end, phase in self.stops:  # GTF: the stop codon is not part of the CDS lines
            if not any(s <= start and end <= e for _, s, e, _ in cds):
                cds.append((n, start, end, phase))
        cds.sort(key=lambda c: c[1:3])
        translatable = all(a[2] < b[1] for a, b in pairwise(cds))
        merged: list[list[int]] = []
        for n, start, end, phase in cds:
            # A stop codon abutting a CDS line joins it (CDS lines that abut stay apart: their exons may too).
            if merged and start == merged[-1][2] + 1 and -1 in (phase, merged[-1][3]):
                merged[-1][2] = end
                if (self.strand == "-" and phase != -1) or merged[-1][3] == -1:  # the phase of the 5' piece
                    merged[-1][3] = phase
            else:
                merged.append([n, start, end, phase])
        if not exons:  # CDS-only models (some GFF3): the CDS segments are the exons
            exons = [(n, s, e) for n, s, e, _ in merged]
        for n, start, end, _ in merged:
            if not any(s <= start and end <= e for _, s, e in exons):
                raise InputError(f"{path} line {n}: CDS {start}-{end} of transcript '{self.id}' is outside its exons")
        ordered = merged if self.strand == "+" else merged[::-1]
        done = 0
        for k, (n, start, end, phase) in enumerate(ordered):
            expected = (3 - (done - ordered[0][3]) % 3) % 3 if k else max(phase, 0)
            if phase == -1:
                phase = ordered[k][3] = expected
            if phase != expected and translatable:
                log.warning("%s line %d: CDS phase %d of transcript '%s' disagrees with the preceding CDS "
                            "length (expected %d); its protein changes are not computed", path, n, phase,
                            self.id, expected)
                translatable = False
            done += end - start + 1
        return Transcript(self.id, self.gene, self.gene_id, self.chrom, self.strand,
                          tuple((s, e) for _, s, e in exons), tuple((s, e, p) for _, s, e, p in merged),
                          self.biotype, translatable)


def _first(attrs: dict[str, str], keys: tuple[str, ...]) -> str | None:
    return next((attrs[k] for k in keys if attrs.get(k)), None)


def _read_gff3(path: Path) -> list[Transcript]:
    feats: dict[str, tuple[list[str], dict[str, str], int]] = {}  # ID -> (columns, attributes, line)
    parts = []
    for n, f, start, end in feature_rows(path):
        attrs = gff3_attributes(f[8])
        if f[2] in _PARTS:
            parts.append((n, f, start, end, attrs))
        if "ID" in attrs:
            feats.setdefault(attrs["ID"], (f, attrs, n))

    def known(ref: str, n: int, what: str) -> tuple[list[str], dict[str, str], int]:
        if ref not in feats:
            raise InputError(f"{path} line {n}: {what} Parent '{ref}' is not the ID of any feature")
        return feats[ref]

    drafts: dict[str, _Draft] = {}
    for n, f, start, end, attrs in parts:
        parents = [p for p in attrs.get("Parent", "").split(",") if p]
        if not parents:
            raise InputError(f"{path} line {n}: {f[2]} has no Parent attribute")
        for ref in parents:
            if ref not in drafts:
                tf, ta, tn = known(ref, n, f[2])
                gene_like = tf[2] in ("gene", "pseudogene") or tf[2].endswith("_gene")
                gene_ref = ref if gene_like else (ta.get("Parent", "").split(",")[0] or ref)
                _, ga, _ = known(gene_ref, tn, tf[2])
                if tf[6] not in ("+", "-", ".", "?"):
                    raise InputError(f"{path} line {tn}: strand '{tf[6]}' must be + or - (feature '{ref}')")
                strand = tf[6] if tf[6] in ("+", "-") else f[6]
                drafts[ref] = _Draft(ta.get("transcript_id") or ref, ga.get("Name") or gene_ref,
                                     ga.get("gene_id") or gene_ref, tf[0], strand, tn,
                                     _first(ta, _TX_BIOTYPE) or _first(ga, _GENE_BIOTYPE))
            drafts[ref].add(path, n, f, start, end)
    return _finish(path, drafts.values())


def _read_gtf(path: Path) -> list[Transcript]:
    drafts: dict[str, _Draft] = {}
    for n, f, start, end in feature_rows(path):
        if f[2] not in _PARTS and f[2] != "transcript":
            continue  # gene, UTR, start_codon, Selenocysteine...: implied by the parts
        attrs = {key: values[0] for key, values in gtf_attributes(f[8]).items()}  # a key's first value
        gene_id, tx_id = attrs.get("gene_id", ""), attrs.get("transcript_id", "")
        if not gene_id or not tx_id:
            raise InputError(f"{path} line {n}: {f[2]} lacks {'transcript_id' if gene_id else 'gene_id'}")
        draft = drafts.get(tx_id)
        if draft is None:
            if f[6] not in ("+", "-"):
                raise InputError(f"{path} line {n}: strand '{f[6]}' must be + or - (transcript '{tx_id}')")
            draft = drafts[tx_id] = _Draft(tx_id, attrs.get("gene_name") or gene_id, gene_id, f[0], f[6], n,
                                           _first(attrs, _TX_BIOTYPE))
        elif draft.gene_id != gene_id:
            raise InputError(f"{path} line {n}: transcript '{tx_id}' is in genes '{draft.gene_id}' and '{gene_id}'")
        if f[2] == "transcript":
            if (f[0], f[6]) != (draft.chrom, draft.strand):
                raise InputError(f"{path} line {n}: transcript '{tx_id}' on {f[0]}{f[6]} but its parts "
                                 f"(line {draft.line}) are on {draft.chrom}{draft.strand}")
            draft.biotype = draft.biotype or _first(attrs, _TX_BIOTYPE)
        else:
            draft.add(path, n, f, start, end)
    return _finish(path, drafts.values())


def _finish(path: Path, drafts) -> list[Transcript]:
    out = []
    for d in drafts:
        if not d.exons and not d.cds:
            raise InputError(f"{path} line {d.line}: transcript '{d.id}' has no exon or CDS lines")
        out.append(d.build(path))
    return out
