"""`aisci catalog lint`: the gate before publishing — named checks of a pipeline's metadata, schemas, rules, conda
envs and test profile, each finding with its file, line and fix (in the spirit of `nf-core pipelines lint`).

The checks live in `checks` (metadata, schemas, configs) and `rulechecks` (rules, envs, outputs, models); this module
adds the two that run the pipeline (`snakemake --lint` on the test data, the test profile) and reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from aisci.catalog import rulechecks  # noqa: F401 - registers the rule checks
from aisci.catalog.checks import CHECKS, Context, Finding, finding
from aisci.catalog.metadata import Pipeline, snakefile_includes
from aisci.catalog.smk import read_rules
from aisci.errors import InputError


# --- running it ----------------------------------------------------------------------------------------------------
TITLES = {"snakemake_lint": "`snakemake --lint` finds nothing, on the test profile's data",
          "test_profile": "the test profile runs and produces the declared outputs"}


def snakemake_lint(ctx: Context, workdir: Path) -> list[Finding]:
    """`snakemake --lint json` on the pipeline in a folder holding its test data; one finding per lint."""
    from aisci.catalog.testrun import snakemake_command

    try:
        res = subprocess.run(snakemake_command(ctx.pipeline, workdir, lint=True), cwd=workdir,
                             capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return [finding(ctx, "snakemake_lint", "test", "`snakemake --lint` ran over 600 s", "see why it hangs")]
    if res.returncode == 0:
        return []
    try:
        report = json.loads(res.stdout)
        lints = [(r.get("rule", "(snakefile)"), lint.get("title", "")) for r in report.get("rules", [])
                 for lint in r.get("lints", [])] + [("(snakefile)", lint.get("title", ""))
                                                    for s in report.get("snakefiles", []) for lint in s.get("lints", [])]
    except ValueError:
        lints = []
    lints = lints or [("(snakefile)", (res.stdout + res.stderr).strip().split("\n")[-1])]
    snakefile = ctx.rel(ctx.pipeline.folder / "Snakefile")
    return [Finding("snakemake_lint", snakefile, 1, f"{rule}: {title}", "run `snakemake --lint` on the test data")
            for rule, title in lints]


def run_checks(ctx: Context, workdir: Path) -> tuple[list[Finding], list[Finding]]:
    """(snakemake_lint, test_profile) findings: the test data made once, linted, then the pipeline run on it.

    A pass of both is stamped in the user's cache by content digest and engine version: the same content is not
    run again (`aisci catalog test` runs it regardless).
    """
    from aisci.catalog.release import content
    from aisci.catalog.testrun import read_stamp, run_test_profile, write_stamp

    digest = content(ctx.pipeline)[0]
    if read_stamp(digest) is not None:
        return [], []
    linted: list[list[Finding]] = []
    try:
        run = run_test_profile(ctx.pipeline, workdir, between=lambda folder: linted.append(snakemake_lint(ctx, folder)))
    except InputError as exc:
        failed = [finding(ctx, "test_profile", "test", str(exc), "run `aisci catalog test` on the checkout, fix the run")]
        return (linted[0] if linted else [finding(ctx, "snakemake_lint", "test.commands", "the test commands failed: "
                                                  "no data to lint on", "see test_profile")]), failed
    if not linted[0]:
        write_stamp(digest, ctx.pipeline, run)
    return linted[0], []


def lint(pipeline: Pipeline, *, fix: bool = False, run_test: bool = True, only: list[str] | None = None
         ) -> tuple[dict[str, list[Finding] | None], list[str]]:
    """Run every check (or ``only`` these) on a pipeline.

    Args:
        pipeline: the pipeline to check.
        fix: apply the mechanical fixes of the checks in FIXABLE.
        run_test: run the test profile (and `snakemake --lint` on its data) in a scratch folder, unless a run of
            this very content on this engine passed before (a stamp in the user's cache).
        only: check ids to run.

    Returns:
        (check id -> findings, fixes applied). The two running checks map to None when ``run_test`` is False.
    """
    ctx = Context(pipeline, fix=fix)
    files = [pipeline.folder / "Snakefile"]
    if files[0].is_file():
        files += [p for p in snakefile_includes(files[0]) if p.is_file()]
        ctx.rules = read_rules(files)
    results: dict[str, list[Finding] | None] = {}
    for check_id in [i for i in CHECKS if only is None or i in only]:
        results[check_id] = CHECKS[check_id][1](ctx)
        if check_id == "files_present" and results[check_id]:
            return results, ctx.fixed  # the rest read those files
    wanted = [i for i in TITLES if only is None or i in only]
    if wanted and run_test:
        with tempfile.TemporaryDirectory(prefix="aisci-lint-") as scratch:
            found = dict(zip(TITLES, run_checks(ctx, Path(scratch) / "test")))
        results.update({i: found[i] for i in wanted})
    else:
        results.update({i: None for i in wanted})
    return results, ctx.fixed


def summary(results: dict[str, list[Finding] | None]) -> dict[str, Any]:
    """The lint results a release records: each check's status and counts."""
    checks = [{"id": i, "title": CHECKS[i][0] if i in CHECKS else TITLES[i],
               "status": "skip" if f is None else "fail" if f else "pass", "findings": len(f or [])}
              for i, f in results.items()]
    return {"checks": checks, "passed": sum(c["status"] == "pass" for c in checks),
            "failed": sum(c["status"] != "pass" for c in checks)}


def report(results: dict[str, list[Finding] | None], out: Any = sys.stdout) -> None:
    """Print each check's status, then every finding with its file, line and fix."""
    for check_id, findings in results.items():
        title = CHECKS[check_id][0] if check_id in CHECKS else TITLES[check_id]
        status = "SKIP" if findings is None else "FAIL" if findings else "ok  "
        print(f"{status} {check_id:<24} {title}", file=out)
        for found in findings or []:
            print(f"     {found}", file=out)
