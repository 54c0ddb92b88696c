"""Tests for aisci.cli: every subcommand is registered; user errors exit 1 with a one-line message."""

import importlib
import subprocess
import sys

import pytest

from aisci.cli import SUBCOMMANDS, create_parser, main


def test_every_subcommand_has_help():
    parser = create_parser()
    text = parser.format_help()
    assert all(name in text for name in SUBCOMMANDS)


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "aisci.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("aisci ")


def test_user_error_is_one_line_without_traceback(tmp_path, capsys):
    assert main(["validate", "--configfile", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert "aisci validate: error: config: file not found" in err and "Traceback" not in err


def test_validate_prints_summary(sim_data, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no config.yaml here: c.yaml is the whole config
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"samples: {sim_data.sample_sheet}\nreference: {sim_data.reference}\n")
    assert main(["validate", "--configfile", str(cfg), "--config", "aligner=bwa"]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "sample S1: fq1=" in out and "2 contigs, 300,000 bp" in out
    assert main(["validate", "--configfile", str(cfg), "--config", "aligner=bowtie"]) == 1


def test_validate_layers_configfiles_like_snakemake(sim_data, capsys, tmp_path, monkeypatch):
    """`aisci validate --configfile mine.yaml` in a project checks what `snakemake --configfile mine.yaml`
    would: the project's config.yaml under it, every problem at once, each naming its file."""
    from aisci.pipelines.project import render_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(render_config({"samples": str(sim_data.sample_sheet)}))
    (tmp_path / "mine.yaml").write_text(f"reference: {sim_data.reference}\ngenome: custom\n")
    assert main(["validate", "--configfile", "mine.yaml"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "aisci validate: error: config.yaml: splice.annotation: required with "
        "genome: custom (a gene table, GFF3 or GTF of your genome), or set splice.enabled: false"]
    assert main(["validate", "--configfile", "mine.yaml", "--config", "splice={enabled: false}",
                 "calling={joint: maybe}"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["aisci validate: error: --config: calling.joint: 'maybe' is not one of true, false, auto"]
    assert main(["validate", "--configfile", "mine.yaml", "--config", "splice={enabled: false}"]) == 0
    assert "config.yaml, mine.yaml, --config: valid" in capsys.readouterr().out
    assert main(["validate", "--configfile", "config.yaml", "--configfile", "mine.yaml", "--config",
                 "splice={enabled: false}"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "config.yaml, mine.yaml, --config: valid"  # config.yaml once


def test_a_subcommand_imports_only_its_own_module():
    """Every pipeline job starts `aisci`: configuring all subcommands would import every module (~0.25 s)."""
    code = "from aisci.cli import main; main(['cohort', 'info', '--help'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "--store" in out.stdout
    code = ("import sys\nfrom aisci.cli import create_parser\n"
            "args = create_parser(['-v', 'cohort', 'info', '--store', 'x']).parse_args(['-v', 'cohort', 'info', "
            "'--store', 'x'])\n"
            "print(args._module, sorted(m for m in sys.modules if m.startswith('aisci.') and m.count('.') >= 1))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("aisci.cohort.cli ") and "aisci.splice" not in out and "aisci.placement" not in out
    assert "aisci.cohort.cli" in out


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_module_loads_and_describes_itself(name, capsys):
    """The dispatcher imports a subcommand's module by name, which no import graph sees: load each here."""
    module = importlib.import_module(SUBCOMMANDS[name][0])
    assert callable(module.configure_parser) and callable(module.run)
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0 and SUBCOMMANDS[name][1] in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("argv, new", [
    (["plm", "score", "--store", "s"], "--store is now --model-store"),
    (["plm", "mutagenesis", "--half"], "--half is now --precision fp16"),
    (["models", "list", "--store=s"], "--store is now --model-store"),
    (["splice", "score", "--weights", "w"], "--weights is now --splice-weights"),
    (["context", "--batch", "9"], "--batch is now --batch-size"),
    (["validate", "--set", "aligner=bwa"], "--set is now --config KEY=VALUE"),
    (["profile", "new", "--partitions", "site.yaml", "--out", "p"], "--partitions is now --site"),
    (["plan", "--sites", "site.yaml"], "--sites is now --site"),
    (["simulate-cluster", "--sites=site.yaml"], "--sites is now --site"),
])
def test_an_old_spelling_names_the_new_one(argv, new, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err == f"aisci {argv[0]}: error: {new}\n"


def test_validate_config_takes_overrides_not_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "--config", "mine.yaml"]) == 1
    assert ("--config 'mine.yaml': expected KEY=VALUE, as snakemake --config (a config file goes with --configfile)"
            in capsys.readouterr().err)


def test_verbose_after_the_subcommand_and_device_spellings():
    args = create_parser(["context"]).parse_args(["context", "--vcf", "v", "--ref", "r", "--out", "o", "-v",
                                                    "--device", "cuda:1"])
    assert args.verbose and args.device == "cuda:1"
    assert not create_parser(["context"]).parse_args(["context", "--vcf", "v", "--ref", "r", "--out", "o"]).verbose
    with pytest.raises(SystemExit):
        create_parser(["context"]).parse_args(["context", "--vcf", "v", "--ref", "r", "--out", "o", "--device", "gpu"])
