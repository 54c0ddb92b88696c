"""Coding consequences of a variant on each overlapping transcript (SO terms, VEP impact, HGVS, mutant protein), and their table."""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any

from aisci.errors import InputError
from aisci.protein.transcripts import Transcript, TranscriptSet

# The SO terms produced here, most severe first, in VEP's order
# (https://www.ensembl.org/info/genome/variation/prediction/predicted_data.html), with VEP's impacts.
SEVERITY = (
    "splice_acceptor_variant", "splice_donor_variant", "stop_gained", "frameshift_variant", "stop_lost",
    "start_lost", "inframe_insertion", "inframe_deletion", "missense_variant", "protein_altering_variant",
    "splice_region_variant", "stop_retained_variant", "synonymous_variant", "coding_sequence_variant",
    "5_prime_UTR_variant", "3_prime_UTR_variant", "non_coding_transcript_exon_variant", "intron_variant",
)
IMPACT = {term: impact for impact, terms in (
    ("HIGH", SEVERITY[:6]), ("MODERATE", SEVERITY[6:10]), ("LOW", SEVERITY[10:13]), ("MODIFIER", SEVERITY[13:]),
) for term in terms}
_RANK = {term: i for i, term in enumerate(SEVERITY)}
AA3 = {
    "A": "Ala", "C": "Cys", "D": "Asp", "E": "Glu", "F": "Phe", "G": "Gly", "H": "His", "I": "Ile", "K": "Lys",
    "L": "Leu", "M": "Met", "N": "Asn", "P": "Pro", "Q": "Gln", "R": "Arg", "S": "Ser", "T": "Thr", "V": "Val",
    "W": "Trp", "Y": "Tyr", "U": "Sec", "X": "Xaa", "*": "Ter",
}
_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")
# Bases of 3' genome read after the transcript end, step by step, when a stop-lost or frameshift
# protein has not met a stop codon within the transcript.
_TAIL_STEPS = (1_000, 10_000, 100_000, 1_000_000)


@dataclass(frozen=True)
class Consequence:
    """One variant allele on one transcript; the fields are the Parquet columns of `aisci annotate`, in order."""

    chrom: str
    pos: int
    ref: str
    alt: str
    gene: str
    gene_id: str
    transcript: str
    strand: str
    consequence: str
    impact: str
    hgvs_c: str | None = None
    hgvs_p: str | None = None
    protein_pos: int | None = None
    protein_end: int | None = None
    ref_aa: str | None = None
    alt_aa: str | None = None
    protein_length: int | None = None
    wt_protein: str | None = None
    mut_protein: str | None = None


COLUMNS = tuple(f.name for f in fields(Consequence))


# Consequences whose mutant protein is scored: in-frame changes of the protein sequence. Truncating
# (stop gained, frameshift) and start/stop changes are left unscored (null), as in ESM-1v.
SCORED = frozenset({"missense_variant", "inframe_insertion", "inframe_deletion", "protein_altering_variant"})


def is_scored(consequence: str) -> bool:
    """Whether a row's consequence terms include an in-frame protein change."""
    return any(term in SCORED for term in consequence.split("&"))


def read_consequences(path: str | os.PathLike[str]) -> Any:
    """The Parquet table of `aisci annotate`, checked for the columns scoring needs."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as Parquet ({exc})") from None
    needed = {"chrom", "pos", "ref", "alt", "gene", "gene_id", "transcript", "consequence", "impact",
              "hgvs_c", "hgvs_p", "protein_pos", "ref_aa", "alt_aa", "wt_protein", "mut_protein"}
    missing = sorted(needed - set(table.column_names))
    if missing:
        raise InputError(f"{path}: not a table of `aisci annotate` (missing columns {', '.join(missing)})")
    return table


def scorable(row: dict[str, Any]) -> bool:
    """Whether a consequence row gets a score: an in-frame protein change whose two proteins differ."""
    return (is_scored(row["consequence"]) and bool(row["wt_protein"]) and bool(row["mut_protein"])
            and row["wt_protein"] != row["mut_protein"])


class RefMismatch(InputError):
    """A variant's REF differs from the reference sequence."""


def revcomp(seq: str) -> str:
    """Reverse complement of a DNA string (N stays N)."""
    return seq.translate(_COMPLEMENT)[::-1]


def _cut(protein: str) -> str:
    """``protein`` up to and including its first ``*``."""
    k = protein.find("*")
    return protein[: k + 1] if k >= 0 else protein


def translate_to_stop(seq: str) -> str:
    """Standard-code translation (Biopython) of whole codons, up to and including the first stop ``*``."""
    from Bio.Seq import translate

    return _cut(translate(seq[: len(seq) - len(seq) % 3]))


class _Model:
    """One transcript's spliced sequence (transcript orientation) and its CDS in transcript coordinates."""

    def __init__(self, tx: Transcript, chrom: str, fasta: Any) -> None:
        self.tx, self.chrom, self.fasta = tx, chrom, fasta
        self.blocks: list[tuple[int, int, int]] = []  # (exon start, end, transcript offset), 5' to 3'
        pieces, offset = [], 0
        for s, e in tx.in_order():
            seq = fasta.fetch(chrom, s - 1, e).upper()
            pieces.append(seq if tx.strand == "+" else revcomp(seq))
            self.blocks.append((s, e, offset))
            offset += e - s + 1
        self.seq = "".join(pieces)
        if len(self.seq) != offset:
            raise InputError(f"transcript '{tx.id}' ({chrom}:{tx.start}-{tx.end}) extends past the end of "
                             f"{chrom} in the reference")
        if not tx.cds:
            return
        first, last = (tx.cds[0], tx.cds[-1]) if tx.strand == "+" else (tx.cds[-1], tx.cds[0])
        five, three = (first[0], last[1]) if tx.strand == "+" else (first[1], last[0])
        self.cds_start, self.cds_end = self.index(five), self.index(three) + 1
        self.frame0 = self.cds_start + first[2]
        self.wt = translate_to_stop(self.seq[self.frame0:self.cds_end])  # with its stop '*', if any
        self.has_stop = self.wt.endswith("*")
        self.length = len(self.wt) - self.has_stop
        self.start_codon = self.seq[self.frame0:self.frame0 + 3] == "ATG"

    def index(self, g: int) -> int:
        """Transcript index (0-based, 5' to 3') of exonic genomic position ``g``."""
        for s, e, offset in self.blocks:
            if s <= g <= e:
                return offset + (g - s if self.tx.strand == "+" else e - g)
        raise ValueError(f"{g} is not in an exon of {self.tx.id}")

    def tail(self, n: int) -> str:
        """Up to ``n`` bases of genome after the transcript's 3' end, in transcript orientation."""
        if self.tx.strand == "+":
            end = min(self.tx.end + n, self.fasta.get_reference_length(self.chrom))
            return self.fasta.fetch(self.chrom, self.tx.end, end).upper() if end > self.tx.end else ""
        start = max(self.tx.start - 1 - n, 0)
        if start >= self.tx.start - 1:
            return ""
        return revcomp(self.fasta.fetch(self.chrom, start, self.tx.start - 1).upper())

    def mutant(self, mseq: str, d: int, ca: int, cb: int) -> str:
        """Protein of the mutant transcript ``mseq`` (length change ``d``) up to its first stop.

        A complete CDS is read on through the 3' UTR and then the 3' genome until a stop codon (or the
        contig end); a CDS without a stop (3' incomplete model) is read to its annotated end only.
        Substitutions (d == 0) only retranslate the touched wild-type codons ``ca``..``cb``.
        """
        if d == 0:
            from Bio.Seq import translate

            local = translate(mseq[self.frame0 + 3 * ca:self.frame0 + 3 * (cb + 1)])
            if not (self.has_stop and ca <= self.length <= cb and local[self.length - ca] != "*"):  # not stop lost
                return _cut(self.wt[:ca] + local + self.wt[cb + 1:])
        protein = translate_to_stop(mseq[self.frame0:self.cds_end + d])  # the usual case ends here
        if not self.has_stop or protein.endswith("*"):
            return protein
        protein = translate_to_stop(mseq[self.frame0:])
        for n in _TAIL_STEPS:
            if protein.endswith("*"):
                break
            tail = self.tail(n)
            protein = translate_to_stop(mseq[self.frame0:] + tail)
            if len(tail) < n:
                break
        return protein


class ModelCache:
    """Transcript sequence models of one reference, kept for the following variants (VCFs are sorted)."""

    def __init__(self, fasta: Any, size: int = 4096) -> None:
        self.fasta, self.size = fasta, size
        self.contigs = set(fasta.references)
        self._models: OrderedDict[tuple[str, int], _Model] = OrderedDict()

    def model(self, tx: Transcript, chrom: str) -> _Model:
        """The (cached) model of ``tx`` read from contig ``chrom``."""
        key = (chrom, id(tx))
        m = self._models.get(key)
        if m is None or m.tx is not tx:
            m = self._models[key] = _Model(tx, chrom, self.fasta)
            if len(self._models) > self.size:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end(key)
        return m


def annotate_variant(chrom: str, pos: int, ref: str, alt: str, transcripts: TranscriptSet, fasta: Any,
                     *, cache: ModelCache | None = None) -> list[Consequence]:
    """Consequences of one ALT allele on every transcript it overlaps (splice region included).

    Args:
        chrom: contig, as named in the reference.
        pos: 1-based VCF POS.
        ref: VCF REF (with the padding base of indels).
        alt: one VCF ALT; symbolic (``<DEL>``), ``*``, ``.`` and breakend alleles give no rows.
        transcripts: the annotation.
        fasta: the reference (``pysam.FastaFile``-like: fetch, references, get_reference_length).
        cache: transcript models kept between calls (one per reference); a fresh one if None.

    Returns:
        One Consequence per overlapping transcript (empty when none overlaps), in transcript order.

    Raises:
        RefMismatch: REF differs from the reference.
        InputError: the contig is not in the reference.
    """
    ref, alt = ref.upper(), alt.upper()
    if not alt or alt == ref or set(alt) - set("ACGTN"):
        return []
    cache = cache or ModelCache(fasta)
    if chrom not in cache.contigs:
        name = getattr(fasta, "filename", "")
        name = name.decode() if isinstance(name, bytes) else str(name)
        raise InputError(f"contig '{chrom}' is not in the reference {name}".rstrip())
    found = fasta.fetch(chrom, pos - 1, pos - 1 + len(ref)).upper()
    if found != ref:
        raise RefMismatch(f"{chrom}:{pos} REF '{ref}' does not match the reference ('{found}')")
    s, e, r, a = _trim(pos, ref, alt)
    lo = s - 1 if not r else s  # an insertion sits between s-1 and s
    out = []
    for tx in transcripts.overlapping(chrom, lo, max(e, s)):
        if not r and not (tx.start <= s - 1 and s <= tx.end):
            continue  # insertion just outside the transcript
        row = _on_transcript(cache.model(tx, chrom), s, e, a)
        if row is not None:
            terms, extra = row
            terms = sorted(set(terms), key=_RANK.__getitem__)
            out.append(Consequence(chrom, pos, ref, alt, tx.gene, tx.gene_id, tx.id, tx.strand, "&".join(terms),
                                   IMPACT[terms[0]], **extra))
    return out


def _trim(pos: int, ref: str, alt: str) -> tuple[int, int, str, str]:
    """Drop the shared prefix (the VCF padding base) then suffix: (first, last ref base, ref, alt)."""
    i = 0
    while i < min(len(ref), len(alt)) and ref[i] == alt[i]:
        i += 1
    ref, alt, pos = ref[i:], alt[i:], pos + i
    j = 0
    while j < min(len(ref), len(alt)) and ref[-1 - j] == alt[-1 - j]:
        j += 1
    ref, alt = ref[: len(ref) - j], alt[: len(alt) - j]
    return pos, pos + len(ref) - 1, ref, alt


def _hits(s: int, e: int, lo: int, hi: int, whole: bool = False) -> bool:
    """Whether variant [s, e] (an insertion when e < s, between e and s) touches [lo, hi].

    ``whole``: an insertion counts only when both flanking bases are inside (splice dinucleotides).
    """
    if lo > hi:
        return False
    if e >= s:
        return s <= hi and e >= lo
    flanks = (lo <= e <= hi, lo <= s <= hi)
    return all(flanks) if whole else any(flanks)


def _splice_terms(tx: Transcript, s: int, e: int) -> list[str]:
    """Splice donor/acceptor (intron ±1-2), splice region (exon 1-3, intron 3-8) and intron terms."""
    terms = []
    low, high = ("splice_donor_variant", "splice_acceptor_variant")[:: 1 if tx.strand == "+" else -1]
    first, last = min(s, e), max(s, e)
    for (es, ee), (ns, ne) in zip(tx.exons, tx.exons[1:]):
        a, b = ee + 1, ns - 1
        if a > b or last < ee - 2 or first > ns + 2:  # every term below lies within [ee - 2, ns + 2]
            continue
        if _hits(s, e, a, min(a + 1, b), whole=True):
            terms.append(low)
        if _hits(s, e, max(b - 1, a), b, whole=True):
            terms.append(high)
        regions = ((max(ee - 2, es), ee), (ns, min(ns + 2, ne)), (a + 2, min(a + 7, b)), (max(b - 7, a), b - 2))
        if any(_hits(s, e, lo, hi) for lo, hi in regions):
            terms.append("splice_region_variant")
        if _hits(s, e, a + 2, b - 2):  # as VEP, the splice dinucleotides alone are not intron_variant
            terms.append("intron_variant")
    return terms


def _on_transcript(m: _Model, s: int, e: int, alt: str) -> tuple[list[str], dict[str, Any]] | None:
    """Terms and protein fields of trimmed variant [s, e] -> ``alt`` on one transcript model."""
    tx = m.tx
    terms = _splice_terms(tx, s, e)
    exon = next(((xs, xe) for xs, xe in tx.exons if xs <= min(s, e) and max(s, e) <= xe), None)
    if exon is None:  # not within one exon: intronic, or spanning exon edges (splicing is unpredictable)
        for xs, xe in tx.exons:
            if e >= s and s <= xe and e >= xs:
                ends = sorted((m.index(max(s, xs)), m.index(min(e, xe))))
                terms += _region_terms(m, ends[0], ends[1] + 1)
        return (terms, {}) if terms else None
    if e < s:  # insertion: between transcript indices t0-1 and t0
        t0 = t1 = max(m.index(e), m.index(s))
    else:
        t0, t1 = sorted((m.index(s), m.index(e)))
        t1 += 1
    alt_t = alt if tx.strand == "+" else revcomp(alt)
    if not tx.cds:
        return terms + ["non_coding_transcript_exon_variant"], {}
    ins = t0 == t1
    if (t0 <= m.cds_start) if ins else (t1 <= m.cds_start):
        return terms + ["5_prime_UTR_variant"], {}
    if t0 >= m.cds_end:
        return terms + ["3_prime_UTR_variant"], {}
    terms += ["5_prime_UTR_variant"] * (t0 < m.cds_start) + ["3_prime_UTR_variant"] * (t1 > m.cds_end)
    extra: dict[str, Any] = {"hgvs_c": _hgvs_c(m, t0, t1, alt_t)}
    if not tx.translatable or ((t0 <= m.frame0) if ins else (t1 <= m.frame0)):
        return terms + ["coding_sequence_variant"], extra  # or only the incomplete codon of a 5' partial CDS
    wt = m.wt
    extra.update(protein_length=m.length, wt_protein=wt[:m.length])
    mseq = m.seq[:t0] + alt_t + m.seq[t1:]
    touches_first = t0 < m.frame0 + 3 and (not ins or t0 > m.frame0)
    if m.start_codon and touches_first and mseq[m.frame0:m.frame0 + 3] != "ATG":
        extra.update(hgvs_p=f"p.{AA3[wt[0]]}1?", protein_pos=1, protein_end=1, ref_aa=wt[0])
        return terms + ["start_lost"], extra
    if t0 < m.frame0:
        return terms + ["coding_sequence_variant"], extra
    d = len(alt_t) - (t1 - t0)
    ca = (t0 - m.frame0) // 3
    cb = (t1 - 1 - m.frame0) // 3 if not ins else ca if (t0 - m.frame0) % 3 else ca - 1
    if ca >= len(wt):  # the incomplete last codon of a 3' partial CDS
        return terms + ["coding_sequence_variant"], extra
    cb = min(cb, len(wt) - 1)
    term, change = _protein_change(m, m.mutant(mseq, d, ca, cb), d, ca, cb)
    extra.update(change)
    return terms + term, extra


def _region_terms(m: _Model, t0: int, t1: int) -> list[str]:
    """Terms for exonic bases [t0, t1) of a variant that also leaves its exon (no protein is predicted)."""
    if not m.tx.cds:
        return ["non_coding_transcript_exon_variant"]
    terms = ["5_prime_UTR_variant"] * (t0 < m.cds_start) + ["3_prime_UTR_variant"] * (t1 > m.cds_end)
    if t0 < m.cds_end and t1 > m.cds_start:
        terms.append("coding_sequence_variant")
    if m.start_codon and t0 < m.frame0 + 3 and t1 > m.frame0:
        terms.append("start_lost")
    stop = m.frame0 + 3 * m.length
    if m.has_stop and t0 < stop + 3 and t1 > stop:
        terms.append("stop_lost")
    return terms


def _protein_change(m: _Model, mut: str, d: int, ca: int, cb: int) -> tuple[list[str], dict[str, Any]]:
    """Classify wild type ``m.wt`` vs ``mut`` (both to their first '*'); ca..cb: wild-type codons touched."""
    wt, n = m.wt, m.length
    out: dict[str, Any] = {"mut_protein": mut.removesuffix("*")}
    if mut == wt:
        span = wt[ca:max(ca, cb) + 1]
        out.update(hgvs_p=f"p.{AA3[wt[ca]]}{ca + 1}=", protein_pos=ca + 1, protein_end=ca + len(span),
                   ref_aa=span, alt_aa=span)
        same = "stop_retained_variant" if "*" in span else "synonymous_variant"
        return ["frameshift_variant" if d % 3 else same], out
    # Residues before codon ca are untouched; search for the first difference from there.
    p = next((i for i in range(ca, min(len(wt), len(mut))) if wt[i] != mut[i]), min(len(wt), len(mut)))
    if p >= len(wt):  # the change lies past the end of a protein without a stop (3' partial model)
        return ["coding_sequence_variant"], out
    stop = mut.find("*")
    if d % 3:
        first = mut[p] if p < len(mut) else ""
        out.update(protein_pos=p + 1, protein_end=p + 1, ref_aa=wt[p:p + 1], alt_aa=first)
        if m.has_stop and p == n:
            out["hgvs_p"] = _ext(n, first, stop - n if stop >= 0 else None)
            return ["frameshift_variant", "stop_lost"], out
        if first == "*":
            out["hgvs_p"] = f"p.{AA3[wt[p]]}{p + 1}Ter"
        else:
            out["hgvs_p"] = f"p.{AA3[wt[p]]}{p + 1}{AA3.get(first, '')}fsTer{stop - p + 1 if stop >= 0 else '?'}"
        return ["frameshift_variant"], out
    expected = n + d // 3  # where the wild-type stop lands in the mutant
    if stop >= 0 and (not m.has_stop or stop < expected):
        if mut[p] == "*":
            out.update(hgvs_p=f"p.{AA3[wt[p]]}{p + 1}Ter", protein_pos=p + 1, protein_end=p + 1, ref_aa=wt[p],
                       alt_aa="*")
        else:
            gone, new = wt[p:cb + 1], mut[p:stop + 1]
            out.update(hgvs_p=_delins(wt, p, gone, new), protein_pos=p + bool(gone),
                       protein_end=max(cb + 1, p + 1), ref_aa=gone, alt_aa=new)
        return ["stop_gained"], out
    if m.has_stop and (stop < 0 or stop > expected):
        ext = stop - expected if stop >= 0 else None
        if p == n:
            hgvs = _ext(n, mut[n:n + 1], ext)
        else:  # an in-frame change reaching into the stop codon (best effort, anchored at p)
            hgvs = (f"p.{AA3[wt[p]]}{p + 1}_Ter{n + 1}delins{AA3.get(mut[p:p + 1], '')}"
                    f"extTer{ext if ext is not None else '?'}")
        out.update(hgvs_p=hgvs, protein_pos=p + 1, protein_end=n + 1, ref_aa=wt[p:], alt_aa=mut[p:expected + 1])
        return ["stop_lost"], out
    most = min(len(wt), len(mut)) - p
    q = min(most, len(wt) - cb - 1)  # the residues after codon cb are untouched (the stop stayed in frame)
    while q < most and wt[-1 - q] == mut[-1 - q]:
        q += 1
    gone, new = wt[p:len(wt) - q], mut[p:len(mut) - q]
    out.update(protein_pos=p + bool(gone), protein_end=p + max(len(gone), 1), ref_aa=gone, alt_aa=new)
    out["hgvs_p"] = _delins(wt, p, gone, new)
    if len(gone) == len(new):
        return ["missense_variant"], out
    return ["inframe_insertion" if not gone else "inframe_deletion" if not new else "protein_altering_variant"], out


def _aa3(residues: str) -> str:
    return "".join(AA3[r] for r in residues)


def _ext(n: int, new: str, ext: int | None) -> str:
    """p.Ter{n+1}{new}extTer{ext}: the stop at residue n+1 read as ``new``; the new stop ``ext`` residues on."""
    return f"p.Ter{n + 1}{AA3.get(new, '')}extTer{ext if ext is not None else '?'}"


def _delins(wt: str, p: int, gone: str, new: str) -> str:
    """HGVS p. of wild-type residues ``gone`` (from index p) replaced by ``new``: sub, del, ins, dup or delins."""
    span = f"{AA3[gone[0]]}{p + 1}" + (f"_{AA3[gone[-1]]}{p + len(gone)}" if len(gone) > 1 else "") if gone else ""
    if not new:
        return f"p.{span}del"
    if not gone:
        k = len(new)
        if p >= k and wt[p - k:p] == new:  # a copy of the residues just before: HGVS calls it a duplication
            return f"p.{AA3[new[0]]}{p - k + 1}" + (f"_{AA3[new[-1]]}{p}" if k > 1 else "") + "dup"
        return f"p.{AA3[wt[p - 1]]}{p}_{AA3[wt[p]]}{p + 1}ins{_aa3(new)}"
    if len(gone) == len(new) == 1:
        return f"p.{span}{AA3[new]}"
    return f"p.{span}delins{_aa3(new)}"


def _hgvs_c(m: _Model, t0: int, t1: int, alt: str) -> str:
    """HGVS c. of transcript bases [t0, t1) replaced by ``alt`` (no 3' shifting)."""
    def c(t: int) -> str:
        if t < m.frame0:
            return f"-{m.frame0 - t}"
        return f"*{t - m.cds_end + 1}" if t >= m.cds_end else str(t - m.frame0 + 1)

    if t0 == t1:
        return f"c.{c(t0 - 1)}_{c(t0)}ins{alt}"
    span = c(t0) if t1 - t0 == 1 else f"{c(t0)}_{c(t1 - 1)}"
    if not alt:
        return f"c.{span}del"
    if t1 - t0 == 1 and len(alt) == 1:
        return f"c.{span}{m.seq[t0]}>{alt}"
    return f"c.{span}delins{alt}"
