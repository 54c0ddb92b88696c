"""MultiQC custom content (aisci.report.multiqc): the files read back, and real MultiQC picking them up."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from aisci.report import multiqc
from aisci.report.germline import SpliceEffect
from aisci.slurm.usage import Report, Row

SPLICE = {"S1": [SpliceEffect("G1", "c1:10 A>G", "donor loss", 0.91, 3), SpliceEffect("G2", "c1:20 C>T", "acceptor gain",
                                                                                   0.31, -12)],
          "cohort": [SpliceEffect("G1", "c1:10 A>G", "donor loss", 0.55, 3)]}
PROTEIN = {"S1": [{"impact": "HIGH", "score": -3.25}, {"impact": "MODERATE", "score": -0.5},
                  {"impact": "MODIFIER", "score": None}]}
BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def read_back(path: Path) -> tuple[dict, list[list[str]]]:
    """The settings (the `#` lines as YAML) and the rows, header first."""
    lines = path.read_text().splitlines()
    settings = yaml.safe_load("\n".join(line[2:] for line in lines if line.startswith("# ")))
    return settings, [line.split("\t") for line in lines if not line.startswith("#")]


def test_splice_and_protein_tables(tmp_path):
    written = multiqc.write(splice=(tmp_path / "splice_mqc.tsv", SPLICE), protein=(tmp_path / "protein_mqc.tsv", PROTEIN))
    assert written == [tmp_path / "splice_mqc.tsv", tmp_path / "protein_mqc.tsv"]
    settings, rows = read_back(tmp_path / "splice_mqc.tsv")
    assert settings["id"] == "aisci_splice" and settings["plot_type"] == "table"
    assert list(settings["headers"]) == rows[0][1:] == ["scored", "delta_ge_0.2", "delta_ge_0.5", "delta_ge_0.8"]
    assert rows[1:] == [["S1", "2", "2", "1", "1"], ["cohort", "1", "1", "1", "0"]]
    settings, rows = read_back(tmp_path / "protein_mqc.tsv")
    assert rows == [["callset", "rows", "scored", "high", "moderate", "low", "modifier", "min_score"],
                    ["S1", "3", "2", "1", "1", "0", "1", "-3.25"]]


def test_usage_from_slurm_and_from_local_benchmark_files(tmp_path):
    row = Row("rule", "align_reads", 2, "cpu", "COMPLETED", 100, 0.03, 0.5, 3.5, 0.8, 0.4, 0.0)
    path = tmp_path / "usage_mqc.tsv"
    multiqc.write(usage=(path, Report(rules=[row], partitions=[], jobs=2), None))
    settings, rows = read_back(path)
    assert settings["section_name"] == "Cluster use (aisci)"
    assert rows == [["rule", "jobs", "partitions", "core_hours", "mean_queue_s", "cpu_efficiency", "memory_efficiency",
                     "gpu_hours"], ["align_reads", "2", "cpu", "0.5", "3.5", "0.8", "0.4", "0.0"]]
    # off Slurm: Snakemake's benchmark files, one folder per rule; a folder of something else is passed over
    bench = tmp_path / "benchmarks"
    (bench / "align_reads").mkdir(parents=True)
    (bench / "align_reads" / "S1.tsv").write_text(BENCHMARK_HEADER + "10.5\t0:00:10\t300.2\t1\t1\t1\t0\t0\t90\t18.5\n")
    (bench / "align_reads" / "S2.tsv").write_text(BENCHMARK_HEADER + "12.0\t0:00:12\t410.0\t1\t1\t1\t0\t0\t90\tNA\n")
    (bench / "report_speed").mkdir()
    (bench / "report_speed" / "notes.tsv").write_text("a\tb\n1\t2\n")
    multiqc.write(usage=(path, None, bench))
    settings, rows = read_back(path)
    assert settings["section_name"] == "Resource use (aisci)"
    assert rows == [["rule", "jobs", "wall_s", "cpu_s", "max_rss_mb"], ["align_reads", "2", "22.5", "18.5", "410.0"]]


@pytest.mark.skipif(shutil.which("multiqc") is None, reason="MultiQC is an optional extra (make test installs it)")
def test_multiqc_reads_every_file(tmp_path):
    """Real MultiQC (offline) finds the custom content and the hap.py-style summary of `aisci evaluate`."""
    data = tmp_path / "results"
    (tmp_path / "benchmarks" / "call").mkdir(parents=True)
    (tmp_path / "benchmarks" / "call" / "S1.tsv").write_text(BENCHMARK_HEADER + "1\t0:00:01\t5\t1\t1\t1\t0\t0\t9\t0.9\n")
    multiqc.write(splice=(data / "qc" / "splice_mqc.tsv", SPLICE), protein=(data / "qc" / "protein_mqc.tsv", PROTEIN),
                  usage=(data / "qc" / "usage_mqc.tsv", None, tmp_path / "benchmarks"))
    (data / "eval").mkdir()
    (data / "eval" / "S1.summary.csv").write_text(
        "Type,Filter,TRUTH.TOTAL,TRUTH.TP,TRUTH.FN,QUERY.TOTAL,QUERY.TP,QUERY.FP,FP.gt,METRIC.Recall,METRIC.Precision,"
        "METRIC.F1_Score\nINDEL,PASS,334,329,5,334,329,5,5,0.985030,0.985030,0.985030\n"
        "SNP,PASS,2041,2038,3,2038,2038,0,0,0.998530,1.000000,0.999265\n")
    out = tmp_path / "multiqc"
    res = subprocess.run(["multiqc", "--no-version-check", "--no-ai", "--outdir", str(out), str(data)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Not able to parse" not in res.stderr + res.stdout
    raw = json.loads((out / "multiqc_data" / "multiqc_data.json").read_text())["report_saved_raw_data"]
    assert raw["multiqc_aisci_splice_table"] == {
        "S1": {"scored": 2, "delta_ge_0.2": 2, "delta_ge_0.5": 1, "delta_ge_0.8": 1},
        "cohort": {"scored": 1, "delta_ge_0.2": 1, "delta_ge_0.5": 1, "delta_ge_0.8": 0}}
    assert raw["multiqc_aisci_protein_table"]["S1"]["min_score"] == -3.25
    assert raw["multiqc_aisci_usage_table"] == {"call": {"jobs": 1, "wall_s": 1.0, "cpu_s": 0.9, "max_rss_mb": 5.0}}
    snp = raw["multiqc_happy_snp_data"]["S1_SNP_PASS"]
    assert (snp["sample_id"], snp["TRUTH.TP_snp"], snp["METRIC.F1_Score_snp"]) == ("S1", "2038", "0.999265")
