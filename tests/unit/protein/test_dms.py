"""The DMS benchmark: ProteinGym and mavenn tables, checks against the wild type, Spearman, `aisci plm benchmark`."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aisci.errors import InputError
from aisci.protein import dms, unirep

DATA = Path(__file__).resolve().parents[1] / "data" / "dms"
GB1 = "MQYKLILNGKTLKGETTTEAVDAATAEKVFKQYANDNGVDGEWTYDDATKTFTVTE"


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_proteingym_mutants_are_applied_on_one_based_positions(tmp_path):
    table = _csv(tmp_path / "pg.csv", "mutant,DMS_score,DMS_score_bin\nQ2A,0.5,1\nQ2A:E56W,-1.25,0\n,3,1\n")
    with pytest.raises(InputError, match=r"pg\.csv line 4: neither mutant nor mutated_sequence"):
        dms.read_dms(table, GB1)
    table = _csv(tmp_path / "pg.csv", "mutant,mutated_sequence,DMS_score\nQ2A,x,0.5\nQ2A:E56W,x,-1.25\n,MKW,3\n")
    rows = dms.read_dms(table, GB1)
    assert [r.label for r in rows] == ["Q2A", "Q2A:E56W", "MKW"]
    assert rows[0].sequence == "MA" + GB1[2:] and rows[1].sequence == "MA" + GB1[2:-1] + "W"
    assert [r.measured for r in rows] == [0.5, -1.25, 3.0] and [r.mutations for r in rows] == [1, 2, -1]
    assert [r.line for r in rows] == [2, 3, 4]


@pytest.mark.parametrize("row, message", [
    ("A2G,1", r"line 3: mutant 'A2G': the wild type has Q at 2, not A"),
    ("Q57A,1", r"line 3: mutant 'Q57A': position 57 is beyond the end of the 56-residue wild type"),
    ("Q2A:Q2G,1", r"line 3: mutant 'Q2A:Q2G': position 2 is changed twice"),
    ("2A,1", r"line 3: mutant '2A': '2A' is not a substitution such as A24G"),
    ("Q2A,high", r"line 3: DMS_score 'high' is not a number"),
    ("Q2A,nan", r"line 3: DMS_score 'nan' is not a finite number"),
])
def test_bad_proteingym_rows_are_named(tmp_path, row, message):
    table = _csv(tmp_path / "bad.csv", f"mutant,DMS_score\nM1M,0\n{row}\n")
    with pytest.raises(InputError, match=r"bad\.csv " + message):
        dms.read_dms(table, GB1)


def test_other_layouts_and_unreadable_files_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"other\.csv: not a DMS table: expected .* \(found a, b\)"):
        dms.read_dms(_csv(tmp_path / "other.csv", "a,b\n1,2\n"), GB1)
    (tmp_path / "broken.csv.gz").write_bytes(b"\x1f\x8bnot gzip")
    with pytest.raises(InputError, match=r"broken\.csv\.gz: cannot read the DMS table"):
        dms.read_dms(tmp_path / "broken.csv.gz", GB1)


def test_mavenn_gb1_sequences_are_placed_on_the_wild_type():
    """The real table's x covers residues 2-56: the offset is found, and labels are numbered on the FASTA."""
    rows = dms.read_dms(DATA / "gb1_olson2014_sample.csv.gz", GB1)
    assert len(rows) == 1500 and {r.mutations for r in rows} == {2}
    lines = gzip.open(DATA / "gb1_olson2014_sample.csv.gz", "rt").read().splitlines()
    x = lines[1].split(",")[-1]
    assert rows[0].sequence == "M" + x and len(rows[0].sequence) == len(GB1)
    for r in rows[:50]:
        for part in r.label.split(":"):
            ref, pos, alt = part[0], int(part[1:-1]), part[-1]
            assert GB1[pos - 1] == ref and r.sequence[pos - 1] == alt


def test_mavenn_rows_of_another_length_are_refused(tmp_path):
    table = _csv(tmp_path / "m.csv", f"set,dist,y,x\ntraining,1,0.5,{GB1[1:]}\ntraining,1,0.1,{GB1[1:-1]}\n")
    with pytest.raises(InputError, match=r"m\.csv line 3: sequence x has 54 residues, the table's others 55"):
        dms.read_dms(table, GB1)


def test_spearman_matches_the_definition_with_ties():
    x = [1.0, 2.0, 2.0, 3.0, 5.0, 4.0]
    y = [10.0, 20.0, 30.0, 30.0, 60.0, 40.0]
    rx, ry = np.array([1, 2.5, 2.5, 4, 6, 5]), np.array([1, 2, 3.5, 3.5, 6, 5])
    want = np.sum((rx - rx.mean()) * (ry - ry.mean())) / np.sqrt(np.sum((rx - rx.mean()) ** 2) *
                                                                 np.sum((ry - ry.mean()) ** 2))
    assert dms.spearman(x, y) == pytest.approx(want, abs=1e-12)
    assert dms.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(dms.spearman([1, 1, 1], [1, 2, 3]))


def test_benchmark_command_on_real_gb1_data_with_unirep(unirep_store, tmp_path):
    """`aisci plm benchmark` on 1,500 real GB1 double mutants: scores equal the library's, rho is theirs."""
    out = tmp_path / "scores.tsv"
    proc = subprocess.run([sys.executable, "-m", "aisci.cli", "plm", "benchmark", "--dms",
                           str(DATA / "gb1_olson2014_sample.csv.gz"), "--fasta", str(DATA / "gb1.fa"), "--model",
                           "unirep64", "--model-store", str(unirep_store), "--batch-size", "64", "--sample", "300",
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "mutant\tscore\tmeasured" and len(lines) == 301
    labels, scores, measured = zip(*[(a, float(b), float(c)) for a, b, c in (ln.split("\t") for ln in lines[1:])])
    rows = {r.label: r for r in dms.read_dms(DATA / "gb1_olson2014_sample.csv.gz", GB1)}
    bundle = unirep.load_unirep(unirep_store / "unirep64", device="cpu")
    again = unirep.full_scores(bundle, [(GB1, rows[k].sequence) for k in labels[:5]])
    assert np.allclose(scores[:5], again, atol=1e-5)
    assert "model unirep64 (autoregressive)" in proc.stdout
    assert "scored 300 mutants in" in proc.stdout and "variants/s" in proc.stdout
    assert f"Spearman rho {dms.spearman(scores, measured):.4f}" in proc.stdout
    assert "2 substitutions: 300 mutants, rho" in proc.stdout


def test_benchmark_checks_the_table_before_the_model_loads(tmp_path):
    table = _csv(tmp_path / "pg.csv", "mutant,DMS_score\nA2G,1\n")
    proc = subprocess.run([sys.executable, "-m", "aisci.cli", "plm", "benchmark", "--dms", str(table), "--fasta",
                           str(DATA / "gb1.fa"), "--model", "unirep64", "--model-store", str(tmp_path / "nowhere")],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "pg.csv line 2: mutant 'A2G': the wild type has Q at 2, not A" in proc.stderr


def test_nonsense_is_left_out_and_unreadable_letters_name_the_line(unirep_store, tmp_path):
    table = _csv(tmp_path / "m.csv", f"set,dist,y,x\nt,1,0.5,{GB1[:3]}A{GB1[4:]}\nt,1,0.1,{GB1[:5]}*{GB1[6:]}\n"
                                      f"t,1,0.2,{GB1[:9]}k{GB1[10:]}\n")
    proc = subprocess.run([sys.executable, "-m", "aisci.cli", "plm", "benchmark", "--dms", str(table), "--fasta",
                           str(DATA / "gb1.fa"), "--model", "unirep64", "--model-store", str(unirep_store)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "m.csv line 4: mutant 'K10k': 'k' at residue 10 is not a residue letter of UniRep's vocabulary" \
        in proc.stderr
    table.write_text("\n".join(table.read_text().splitlines()[:3]) + "\n")
    proc = subprocess.run([sys.executable, "-m", "aisci.cli", "plm", "benchmark", "--dms", str(table), "--fasta",
                           str(DATA / "gb1.fa"), "--model", "unirep64", "--model-store", str(unirep_store)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "left out 1 nonsense mutants" in proc.stdout and "scored 1 mutants" in proc.stdout


def test_benchmark_runs_on_a_staged_esm_model_too(esm_store, tmp_path):
    """The same command on an ESM model of the store: its strategy is used and named."""
    table = _csv(tmp_path / "pg.csv", "mutant,DMS_score\nQ2A,0.5\nY3W,0.1\nK4E:L5P,-2\nT11S,0.3\n")
    proc = subprocess.run([sys.executable, "-m", "aisci.cli", "plm", "benchmark", "--dms", str(table), "--fasta",
                           str(DATA / "gb1.fa"), "--model", esm_store.model, "--model-store", str(esm_store.path),
                           "--strategy", "wt-marginals", "--out", str(tmp_path / "s.tsv")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"model {esm_store.model} (wt-marginals)" in proc.stdout and "scored 4 mutants" in proc.stdout
    assert "1 substitution: 3 mutants" in proc.stdout and "2 substitutions: 1 mutants" in proc.stdout
    assert len((tmp_path / "s.tsv").read_text().splitlines()) == 5
