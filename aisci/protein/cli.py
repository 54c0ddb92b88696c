"""`aisci plm score|embed|mutagenesis|heatmap|proteins|summary`: ESM protein language model scores, on CUDA when visible."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from aisci import options
from aisci.errors import InputError

log = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Register the actions of `aisci plm`."""
    sub = parser.add_subparsers(dest="plm_command", metavar="ACTION", required=True)
    s = sub.add_parser("score", help="score the in-frame protein changes of an `aisci annotate` table; "
                                     "write the VCF with INFO/AISCI_CSQ + PLM_SCORE and a Parquet table")
    s.add_argument("--vcf", required=True, help="the VCF the consequences were computed from (plain or bgzip)")
    s.add_argument("--consequences", required=True, help="Parquet table written by `aisci annotate`")
    s.add_argument("--strategy", choices=["masked-marginals", "wt-marginals", "pseudo-ppl"],
                   default="masked-marginals", help="substitutions (default masked-marginals); indels use pseudo-ppl")
    s.add_argument("--out", required=True, help="output VCF, bgzipped and tabix-indexed (.vcf.gz)")
    s.add_argument("--parquet", help="also write one row per record x ALT x transcript here")
    s.add_argument("--regions-file", help="score only the records (and table rows) whose POS lies in these intervals "
                                          "(CHROM, BEG, END; 1-based, tab-separated): one group of a scatter "
                                          "(`aisci gather`)")
    s.add_argument("--cache", help="score cache folder: protein changes already in it (same model files and "
                                   "strategy) are not scored again, the others are scored and added (fp32 only)")
    _model_options(s)
    c = sub.add_parser("cache", help="score the protein changes of `aisci annotate` tables that the score cache "
                                     "lacks, once each, into the cache")
    c.add_argument("consequences", nargs="+", help="Parquet tables of `aisci annotate`; a change of several is "
                                                   "scored once")
    c.add_argument("--cache", required=True, help="score cache folder (created if missing; shared by runs)")
    c.add_argument("--strategy", choices=["masked-marginals", "wt-marginals", "pseudo-ppl"],
                   default="masked-marginals", help="substitutions (default masked-marginals); indels use pseudo-ppl")
    c.add_argument("--regions-file", help="only the table rows whose POS lies in these intervals")
    c.add_argument("--summary", help="write what was read and scored here (JSON)")
    _model_options(c)
    e = sub.add_parser("embed", help="mean-pooled embedding of every protein of a FASTA (Parquet)")
    e.add_argument("--fasta", required=True, help="protein FASTA")
    e.add_argument("--out", required=True, help="Parquet: protein, length, model, embedding")
    _model_options(e)
    m = sub.add_parser("mutagenesis", help="all 19 substitutions at every position of a protein (Parquet)")
    m.add_argument("--fasta", required=True, help="protein FASTA")
    m.add_argument("--protein", help="the key of one protein (id with [^A-Za-z0-9._-] as _); default: the only one")
    m.add_argument("--strategy", choices=["wt-marginals", "masked-marginals"], default="wt-marginals",
                   help="wt-marginals (one forward per window, default) or masked-marginals (one per position)")
    m.add_argument("--out", required=True, help="Parquet: protein, position, wt, mt, score, model, strategy")
    _model_options(m)
    b = sub.add_parser("benchmark", help="score every mutant of a deep mutational scan zero-shot; print Spearman's "
                                         "rho against the measurements and variants/s")
    b.add_argument("--dms", required=True, help="ProteinGym CSV (mutant like A24G:D40N, DMS_score) or mavenn table "
                                                "(x, y); plain or gzipped")
    b.add_argument("--fasta", required=True, help="the wild type (protein FASTA; positions are 1-based on it)")
    b.add_argument("--protein", help="the key of one protein of the FASTA; default: the only one")
    b.add_argument("--strategy", choices=["masked-marginals", "wt-marginals", "pseudo-ppl"],
                   default="masked-marginals", help="ESM substitutions (default masked-marginals); UniRep scores "
                                                    "left to right whatever this says")
    b.add_argument("--sample", type=int, help="score a random sample of this many mutants (seeded by --seed)")
    b.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    b.add_argument("--out", help="write mutant, score, measured here (TSV)")
    _model_options(b)
    t = sub.add_parser("proteins", help="translate every coding transcript of a GFF3/GTF into a protein FASTA")
    t.add_argument("--annotation", required=True, help="GFF3 or GTF with CDS features")
    t.add_argument("--ref", required=True, help="reference FASTA (plain or bgzip, with .fai)")
    t.add_argument("--out", required=True, help="protein FASTA: >transcript gene=NAME")
    t.add_argument("--first", type=int, help="only the first N coding transcripts in file order (e.g. a small demo)")
    y = sub.add_parser("summary", help="print consequence counts and the lowest-scoring changes of `score` tables")
    y.add_argument("parquet", nargs="+", help="tables written by `aisci plm score --parquet`")
    y.add_argument("--top", type=int, default=20, help="at most this many changes per table (default 20)")
    h = sub.add_parser("heatmap", help="PNG heatmap of a mutagenesis table")
    h.add_argument("parquet", help="table written by `aisci plm mutagenesis`")
    h.add_argument("--out", required=True, help="PNG file")


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model name in the store (`aisci models list`)")
    options.add_model_store(p)
    p.add_argument("--model-dir", help="load this directory instead of a store entry (config.json, weights, vocab.txt)")
    options.add_device(p)
    options.add_precision(p, ("fp32", "fp16"))
    options.add_batch_size(p, 16, "sequences per forward pass")
    options.add_threads(p, "torch CPU threads")


def load_model(args: argparse.Namespace) -> Any:
    """The model (ESM or UniRep) named by --model/--model-store (checked intact first) or --model-dir, on its device."""
    from aisci.protein.plm import load as load_dir

    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.model_dir:
        return load_dir(Path(args.model_dir), device=args.device, half=args.precision == "fp16", name=args.model)
    if not args.model:
        raise InputError("give --model NAME (a model of the store) or --model-dir DIR")
    from aisci.protein.store import check_model, store_dir

    path = check_model(store_dir(args.model_store), args.model, where="--model")
    return load_dir(path, device=args.device, half=args.precision == "fp16", name=args.model)


def pair_cache(args: argparse.Namespace) -> Any:
    """The score cache of --model (from the store), --strategy and --cache; fp32 only."""
    from aisci.protein import cached

    cached.refuse_reduced_precision(args.precision)
    if args.model_dir or not args.model:
        raise InputError("--cache needs --model NAME of a model store (its manifest's hashes version the cache)")
    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size}: must be at least 1")
    return cached.PairCache.for_model(args.cache, args.model_store, args.model, args.strategy)


def run(args: argparse.Namespace) -> int:
    """Dispatch `aisci plm ACTION`."""
    from aisci.protein import proteins as prot

    if args.plm_command == "heatmap":
        prot.plot_heatmap(args.parquet, args.out)
        return 0
    if args.plm_command == "proteins":
        n = prot.translate_annotation(args.annotation, args.ref, args.out, first=args.first)
        log.info("wrote %d proteins to %s", n, args.out)
        return 0
    if args.plm_command == "summary":
        from aisci.protein.variants import summary

        summary(args.parquet, args.top)
        return 0
    if args.plm_command == "score":
        from aisci.gather import read_regions
        from aisci.protein.consequence import read_consequences
        from aisci.protein.variants import score_vcf

        if not str(args.out).endswith(".vcf.gz"):
            raise InputError(f"--out {args.out}: must end in .vcf.gz (the output is bgzipped and indexed)")
        from aisci.vcfcheck import check_vcf

        regions = read_regions(args.regions_file) if args.regions_file else None
        check_vcf(args.vcf, require_sorted=True)  # a bad VCF or a wrong table fails before the model loads
        read_consequences(args.consequences)
        cache = pair_cache(args) if args.cache else None
        bundle = (lambda: load_model(args)) if cache else load_model(args)
        t0 = time.perf_counter()
        counts = score_vcf(args.vcf, args.consequences, bundle, args.strategy, args.out, args.parquet,
                           batch_size=args.batch_size, regions=regions, cache=cache)
        log.info("%s in %.1f s", ", ".join(f"{v} {k}" for k, v in counts.items()), time.perf_counter() - t0)
        return 0
    if args.plm_command == "cache":
        from aisci.gather import read_regions
        from aisci.protein import cached
        from aisci.protein.consequence import read_consequences

        regions = read_regions(args.regions_file) if args.regions_file else None
        for path in args.consequences:
            read_consequences(path)  # every table checked before the model loads
        cache = pair_cache(args)
        counts = cached.fill(cache, lambda: load_model(args), args.strategy, args.batch_size, args.consequences,
                             regions)
        if args.summary:
            cached.write_summary(args.summary, cache, counts)
        print(f"{cache.model}@{cache.version}: {counts.pairs} distinct protein changes in {counts.tables} tables, "
              f"{counts.scored} scored now ({counts.seconds:.1f} s); the others were in the cache")
        return 0
    if args.plm_command == "benchmark":
        return _benchmark(args)
    proteins = prot.read_proteins(args.fasta)
    if args.plm_command == "embed":
        from aisci.protein.plm import embed

        bundle = load_model(args)
        vectors = embed(bundle, [p.sequence for p in proteins], batch_size=args.batch_size)
        prot.write_embeddings(proteins, vectors, bundle.name, args.out)
        log.info("embedded %d proteins (%d dimensions) with %s", len(proteins), vectors.shape[1], bundle.name)
        return 0
    if args.protein:
        protein = prot.select(proteins, args.protein, args.fasta)
    elif len(proteins) == 1:
        protein = proteins[0]
    else:
        raise InputError(f"{args.fasta}: holds {len(proteins)} proteins; choose one with --protein KEY")
    from aisci.protein.plm import saturation

    bundle = load_model(args)
    t0 = time.perf_counter()
    scores = saturation(bundle, protein.sequence, args.strategy, batch_size=args.batch_size)
    prot.write_mutagenesis(protein, scores, bundle.name, _strategy(bundle, args.strategy), args.out)
    seconds = time.perf_counter() - t0
    n = len(protein.sequence) * 19
    log.info("%s: %d substitutions in %.1f s (%.0f variants/s)", protein.id, n, seconds, n / max(seconds, 1e-9))
    return 0


def _strategy(bundle: Any, asked: str) -> str:
    """The strategy a model used: UniRep scores left to right whatever was asked."""
    from aisci.protein.plm import is_unirep

    if is_unirep(bundle):
        from aisci.protein.unirep import STRATEGY

        return STRATEGY
    return asked


def _one_protein(args: argparse.Namespace) -> Any:
    from aisci.protein import proteins as prot

    proteins = prot.read_proteins(args.fasta)
    if args.protein:
        return prot.select(proteins, args.protein, args.fasta)
    if len(proteins) != 1:
        raise InputError(f"{args.fasta}: holds {len(proteins)} proteins; choose one with --protein KEY")
    return proteins[0]


def _benchmark(args: argparse.Namespace) -> int:
    """`aisci plm benchmark`: the table checked against the wild type before the model loads."""
    import random

    from aisci.protein.dms import benchmark, read_dms

    protein = _one_protein(args)
    mutants = read_dms(args.dms, protein.sequence)
    nonsense = [m for m in mutants if "*" in m.sequence]
    mutants = [m for m in mutants if "*" not in m.sequence]
    if not mutants:
        raise InputError(f"{args.dms}: no mutants{' but nonsense ones' if nonsense else ''}")
    if args.sample is not None:
        if args.sample < 1:
            raise InputError(f"--sample {args.sample}: must be at least 1")
        if args.sample < len(mutants):
            mutants = sorted(random.Random(args.seed).sample(mutants, args.sample), key=lambda m: m.line)
    bundle = load_model(args)
    result = benchmark(bundle, protein.sequence, mutants, strategy=args.strategy, batch_size=args.batch_size,
                       out=args.out, table=args.dms)
    print(f"model {bundle.name} ({_strategy(bundle, args.strategy)}), {args.dms} on {protein.id} "
          f"({len(protein.sequence)} residues)")
    if nonsense:
        print(f"left out {len(nonsense)} nonsense mutants (a '*': stop codons are not protein changes)")
    print(f"scored {result.scored} mutants in {result.seconds:.1f} s ({result.per_second:.1f} variants/s)")
    print(f"Spearman rho {result.spearman:.4f}")
    for k, (n, rho) in result.by_mutations.items():
        what = "given as sequences" if k < 0 else f"{k} substitution{'s' if k != 1 else ''}"
        print(f"  {what}: {n} mutants, rho {rho:.4f}")
    return 0
