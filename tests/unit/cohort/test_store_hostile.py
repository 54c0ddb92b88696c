"""The cohort store against hostile or broken input: an edited store.json, linked folders, samples that
used to sink their shard (huge ploidy, long names, a failing commit), staging left by killed ingests.

Every exploit test checks that nothing outside the store was deleted or created.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aisci.cli import main
from aisci.cohort import store as store_mod
from aisci.cohort.reanalyze import shard_task
from aisci.cohort.schema import CALLS, SCORED_CALLS
from aisci.cohort.layout import OWNER, STAGING_MAX_AGE
from aisci.cohort.store import CohortStore
from aisci.errors import InputError
from tests.unit.cohort.test_store import HAND, HEADER, expected_counts, store_counts, write_vcf


def tree(root: Path, skip: Path | None = None) -> dict[str, tuple[str, int]]:
    """Every path under ``root`` (links not followed) but ``skip``'s: its kind and size, to compare."""
    found = {}
    for folder, dirs, files in os.walk(root):
        if skip is not None and Path(folder) == skip:
            dirs[:] = []
            continue
        for name in dirs + files:
            p = Path(folder) / name
            if skip is not None and p == skip:
                continue
            st = p.lstat()
            kind = "link" if p.is_symlink() else "dir" if p.is_dir() else "file"
            found[str(p.relative_to(root))] = (kind, 0 if kind == "dir" else st.st_size)
    return found


@pytest.fixture
def cohort(tmp_path):
    """A store of S1 and S2 (two commits: generation 2), S3's VCF, a manifest of all three, a victim folder."""
    vcfs = {n: write_vcf(tmp_path / f"{n}.vcf", n, HAND[n]) for n in HAND}
    store = CohortStore(tmp_path / "store", create=True)
    for n in ("S1", "S2"):
        store.commit([store.stage_sample(n, vcfs[n])])
    manifest = tmp_path / "samples.tsv"
    manifest.write_text("sample\tvcf\n" + "".join(f"{n}\t{v}\n" for n, v in vcfs.items()))
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "precious.txt").write_text("keep me")
    (victim / "sub" / "part.parquet").write_text("not the store's")
    return store, manifest, victim


def ingest(manifest: Path, root: Path, capsys) -> tuple[int, str, str]:
    """`aisci cohort ingest` in this process: (exit status, stdout, stderr)."""
    rc = main(["cohort", "ingest", "--manifest", str(manifest), "--store", str(root)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def edit_state(root: Path, change, victim: Path | None = None) -> None:
    """Edit store.json by hand: ``change(state)``, then '{victim}' replaced by the victim folder's path."""
    path = root / "store.json"
    state = json.loads(path.read_text())
    change(state)
    path.write_text(json.dumps(state).replace("{victim}", str(victim)))


# ------------------------------------------------------------------------------ 1. paths read from store.json
def _set(*keys, value):
    def change(state):
        target = state
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value(state) if callable(value) else value
    return change


def _rename_sample(state):
    state["samples"]["../x"] = state["samples"].pop("S1")


@pytest.mark.parametrize(("change", "message"), [
    (_set("variants", value="../victim"), "variants: '../victim' is outside the store"),
    (_set("variants", value="variants/../../victim"), "variants: 'variants/../../victim' is outside the store"),
    (_set("variants", value="{victim}"), "variants: '{victim}' is outside the store"),
    (_set("variants", value="calls"), "variants: 'calls' is not variants/v2"),
    (_set("samples", "S1", "file", value="../victim/precious.txt"),
     "samples.S1.file: '../victim/precious.txt' is outside the store"),
    (_set("samples", "S1", "file", value="{victim}/precious.txt"),
     "samples.S1.file: '{victim}/precious.txt' is outside the store"),
    (_set("samples", "S1", "file", value=lambda s: s["samples"]["S2"]["file"]),
     "samples.S1.file: 'calls/S2."),
    (_set("samples", "S1", "file", value="store.json"), "samples.S1.file: 'store.json' is not calls/S1."),
    (_set("samples", "S1", "file", value=None), "samples.S1.file: None but the sample has calls on chr1"),
    (_set("samples", "S1", "fingerprint", value="../.."), "samples.S1.fingerprint: '../..' is not a sha256"),
    (_set("samples", "S1", "chroms", value="chr1"), "samples.S1.chroms: 'chr1' is not a list"),
    (_set("generation", value=-1), "generation: -1 is not a whole number"),
    (_rename_sample, "samples: sample '../x' must match"),
])
def test_an_edited_store_json_is_refused_before_anything_is_deleted(cohort, tmp_path, capsys, change, message):
    store, manifest, victim = cohort
    # S1 changed: its ingest would replace (delete) S1's file and the current variants folder
    write_vcf(tmp_path / "S1.vcf", "S1", HAND["S1"][:2])
    edit_state(store.root, change, victim)
    message = message.replace("{victim}", str(victim))
    outside = tree(tmp_path, skip=store.root)
    inside = tree(store.root)
    rc, out, err = ingest(manifest, store.root, capsys)
    assert rc == 1
    assert err.splitlines()[-1].startswith(f"aisci cohort: error: {store.root / 'store.json'}: {message}")
    assert tree(tmp_path, skip=store.root) == outside  # nothing outside deleted, changed or created
    assert tree(store.root) == inside  # nor inside: the check runs before garbage collection
    with pytest.raises(InputError, match="store.json: "):
        CohortStore(store.root).collect_garbage(staging_max_age=0)


@pytest.mark.parametrize("folder", ["calls", "variants", ".staging", "variants/v2"])
def test_a_store_folder_linked_elsewhere_is_refused(cohort, tmp_path, capsys, folder):
    store, manifest, victim = cohort
    real = store.root / folder
    if real.exists():  # its content moves to the victim folder, so that reads through the link would work
        for p in real.iterdir():
            p.rename(victim / p.name)
        real.rmdir()
    # a killed ingest's staging (its owner lock free) in the victim: a sweep through the link would delete it
    orphan = victim / ("ab" * 16)
    orphan.mkdir()
    (orphan / OWNER).write_text("")
    real.symlink_to(victim, target_is_directory=True)
    outside = tree(tmp_path, skip=store.root)
    rc, _, err = ingest(manifest, store.root, capsys)
    assert rc == 1
    assert err.splitlines()[-1] == (f"aisci cohort: error: {real}: a link to {victim}, outside the store "
                                    "(a store's folders are never links)")
    assert tree(tmp_path, skip=store.root) == outside


def test_a_linked_lock_or_next_generation_folder_creates_nothing_outside(cohort, tmp_path, capsys):
    store, manifest, victim = cohort
    before = tree(victim)
    # the next commit writes variants/v3: a link there (left by anyone) is removed, never written through
    (store.root / "variants" / "v3").symlink_to(victim, target_is_directory=True)
    rc, out, _ = ingest(manifest, store.root, capsys)
    assert rc == 0, out
    assert store_counts(CohortStore(store.root)) == expected_counts(HAND)
    assert (store.root / "variants" / "v3").is_dir() and not (store.root / "variants" / "v3").is_symlink()
    assert tree(victim) == before
    # a .lock that is a link to a file outside: refused, nothing created there
    (store.root / ".lock").unlink()
    (store.root / ".lock").symlink_to(tmp_path / "created-outside")
    with pytest.raises(InputError, match=r"\.lock: cannot open the store's lock"):
        CohortStore(store.root).collect_garbage()
    assert not (tmp_path / "created-outside").exists()


def test_a_format_2_store_is_read_and_upgraded_by_its_next_commit(cohort, tmp_path):
    """Version 2 stored the allele counts as int8: its files are read widened, and the next commit writes 3."""
    store, _, _ = cohort
    before = store.query()
    for entry in store.samples().values():
        path = store.root / entry["file"]
        v2 = pa.schema([f.with_type(pa.int8()) if f.name in ("alt_copies", "called_alleles") else f for f in CALLS])
        pq.write_table(pq.read_table(path).cast(v2), path)
        assert pq.read_schema(path).field("alt_copies").type == pa.int8()
    edit_state(store.root, _set("format_version", value=2))
    old = CohortStore(store.root)
    assert old.query().equals(before) and old.query().schema.equals(SCORED_CALLS)
    changed = dict(HAND, S1=HAND["S1"][1:])  # S1 replaced: its int8 file is read for its old counts
    old.commit([old.stage_sample(n, write_vcf(tmp_path / f"{n}.vcf", n, changed[n])) for n in ("S1", "S3")])
    assert json.loads((store.root / "store.json").read_text())["format_version"] == 3
    assert store_counts(old) == expected_counts(changed)


# ------------------------------------------------------------------------------ 2. one sample never sinks a shard
def ploidy_vcf(path: Path, sample: str, copies: int, called: int) -> Path:
    """One record whose GT has ``called`` alleles, ``copies`` of them ALT."""
    gt = "/".join(["1"] * copies + ["0"] * (called - copies))
    path.write_text(HEADER.format(sample=sample) + f"chr1\t100\t.\tA\tC\t50\tPASS\t.\tGT\t{gt}\n")
    return path


def test_any_ploidy_is_counted_exactly(tmp_path, capsys):
    """int8 counts made a GT of 128 alleles fail the shard's commit and one of 257 count as 1."""
    rows = {"P128": (128, 128), "P257": (257, 257), "P300": (200, 300), "G1": (1, 2)}
    manifest = tmp_path / "samples.tsv"
    manifest.write_text("sample\tvcf\n" + "".join(
        f"{n}\t{ploidy_vcf(tmp_path / f'{n}.vcf', n, *cc)}\n" for n, cc in rows.items()))
    rc, out, _ = ingest(manifest, tmp_path / "store", capsys)
    assert rc == 0 and "samples ingested: 4," in out
    store = CohortStore(tmp_path / "store")
    (summary,) = store.summaries().to_pylist()
    assert (summary["ac"], summary["called_alleles"], summary["n_records"], summary["carriers"],
            summary["hom_alt"], summary["an"]) == (586, 687, 4, 4, 2, 687)
    calls = {r["sample"]: (r["alt_copies"], r["called_alleles"]) for r in store.query().to_pylist()}
    assert calls == rows


def test_one_bad_sample_never_sinks_its_shard(tmp_path, capsys):
    vcfs = {n: write_vcf(tmp_path / f"{n}.vcf", n, HAND[n]) for n in HAND}
    broken = tmp_path / "broken.vcf"
    broken.write_text(HEADER.format(sample="B") + "chr1\tten\t.\tA\tC\t50\tPASS\t.\tGT\t0/1\n")
    root = tmp_path / "store"
    items = [("S1", str(vcfs["S1"])), ("L" * 300, str(vcfs["S2"])), ("B", str(broken)),
             ("P257", str(ploidy_vcf(tmp_path / "p.vcf", "P257", 257, 257))), ("S3", str(vcfs["S3"]))]
    CohortStore(root, create=True)
    committed, failures = shard_task(str(root), items)
    assert committed == ["S1", "P257", "S3"]
    assert [f.what for f in failures] == [f"sample {'L' * 300}", "sample B"]
    assert "is 300 characters long (at most 64)" in failures[0].error
    assert failures[1].error == f"{broken} line {HEADER.count(chr(10)) + 1}: POS 'ten' is not a positive integer"
    assert sorted(CohortStore(root).samples()) == ["P257", "S1", "S3"]
    assert not list((root / ".staging").iterdir())
    # a manifest with such a name is refused line by line before any work
    manifest = tmp_path / "samples.tsv"
    manifest.write_text(f"sample\tvcf\nS2\t{vcfs['S2']}\n{'L' * 300}\t{vcfs['S2']}\n")
    rc, _, err = ingest(manifest, root, capsys)
    assert rc == 1 and f"{manifest} line 3: sample 'LLL" in err and "is 300 characters long (at most 64)" in err


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_sample_whose_commit_fails_fails_alone(tmp_path, monkeypatch, capsys, hard_links):
    """The commit of a shard fails (here a file system refusing S2's calls file name): its samples are then
    committed one by one, S2 is listed and the exit status is 1, the others land. Without hard links the staged
    files are copied, never moved, so the retry still finds S1's."""
    vcfs = {n: write_vcf(tmp_path / f"{n}.vcf", n, HAND[n]) for n in HAND}
    manifest = tmp_path / "samples.tsv"
    manifest.write_text("sample\tvcf\n" + "".join(f"{n}\t{v}\n" for n, v in vcfs.items()))
    link = store_mod._link

    def refuse_s2(src, dst):
        if dst.name.startswith("S2."):
            raise OSError(errno.ENAMETOOLONG, "File name too long", str(dst))
        return link(src, dst)

    def no_hard_links(src, dst, *args, **kwargs):  # some FUSE, SMB and object-store mounts
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(store_mod, "_link", refuse_s2)
    if not hard_links:
        monkeypatch.setattr(os, "link", no_hard_links)
    rc, out, _ = ingest(manifest, tmp_path / "store", capsys)
    assert rc == 1
    assert "samples ingested: 2," in out and "FAILED (1):" in out
    assert f"  sample S2: {vcfs['S2']}: cannot be committed: unexpected OSError: [Errno 36] File name too long" in out
    store = CohortStore(tmp_path / "store")
    assert sorted(store.samples()) == ["S1", "S3"]
    assert store_counts(store) == expected_counts({n: HAND[n] for n in ("S1", "S3")})
    assert not list((store.root / ".staging").iterdir())
    assert sorted(p.name.split(".")[0] for p in (store.root / "calls").iterdir()) == ["S1", "S3"]


# ------------------------------------------------------------------------------ 3. staging of killed ingests
STAGER = textwrap.dedent("""
    import os, signal, sys
    from aisci.cohort.store import CohortStore
    store = CohortStore(sys.argv[1])
    staged = store.stage_sample(sys.argv[2], sys.argv[3])
    print(staged.staging, flush=True)
    if sys.argv[4] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.readline()  # a concurrent ingest waiting for the store lock, its staging held
    store.commit([staged])
    print("committed", flush=True)
""")


def test_a_killed_ingests_staging_goes_with_the_next_commit_a_live_ones_stays(tmp_path):
    vcfs = {n: write_vcf(tmp_path / f"{n}.vcf", n, HAND[n]) for n in HAND}
    store = CohortStore(tmp_path / "store", create=True)
    root = str(store.root)
    killed = subprocess.run([sys.executable, "-c", STAGER, root, "S2", str(vcfs["S2"]), "kill"],
                            capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    leftover = Path(killed.stdout.strip())
    assert (leftover / "calls.parquet").exists() and leftover.parent == store.root / ".staging"
    live = subprocess.Popen([sys.executable, "-c", STAGER, root, "S3", str(vcfs["S3"]), "wait"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        held = Path(live.stdout.readline().strip())
        assert (held / "calls.parquet").exists()
        ownerless = store.root / ".staging" / ("cd" * 16)  # staged by an older version: no owner lock, recent
        ownerless.mkdir()
        store.commit([store.stage_sample("S1", vcfs["S1"])])
        assert not leftover.exists()
        assert (held / "calls.parquet").exists() and ownerless.exists()
        assert store.collect_garbage() == [] and held.exists()  # what `aisci cohort ingest` runs first
        past = time.time() - STAGING_MAX_AGE - 60
        os.utime(ownerless, (past, past))
        os.utime(held, (past, past))
        assert store.collect_garbage() == [ownerless]  # old and ownerless; the live one stays however old
        live.stdin.write("\n")
        live.stdin.flush()
        assert live.stdout.readline().strip() == "committed"
        assert live.wait(60) == 0
    finally:
        if live.poll() is None:
            live.kill()
            live.wait()
    assert sorted(store.samples()) == ["S1", "S3"]
    assert store_counts(store) == expected_counts({n: HAND[n] for n in ("S1", "S3")})
    assert not list((store.root / ".staging").iterdir())
    assert sorted(p.name.split(".")[0] for p in (store.root / "calls").iterdir()) == ["S1", "S3"]


def test_a_long_sample_name_stored_by_an_earlier_version_stays_readable(cohort):
    """Format 2 took sample names of any length: a store holding one is read as it is (new names: 64 at most)."""
    store, _, _ = cohort
    legacy = "HG002_GIAB_NIST_v4.2.1_PacBio_HiFi_Revio_30x_GRCh38_deepvariant_1.6_run2"  # 72 characters
    rows = store.query().num_rows

    def rename(state):
        entry = state["samples"].pop("S1")
        new = f"calls/{legacy}.{entry['fingerprint'][:8]}.parquet"
        os.rename(store.root / entry["file"], store.root / new)
        state["samples"][legacy] = dict(entry, file=new)

    edit_state(store.root, rename)
    assert CohortStore(store.root).query().num_rows == rows
