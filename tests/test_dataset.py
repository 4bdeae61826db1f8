"""Dataset shards: byte-identical resumable builds (also after SIGKILL), loading, data card, query points."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from powdersolve.dataset import (
    BuildConfig,
    QueryPointDataset,
    build_dataset,
    card_hash,
    load_dataset,
    load_datasets,
    parse_shard,
    read_shard,
    shard_plan,
)
from powdersolve.density import density_at
from powdersolve.diffraction import sticks
from powdersolve.errors import InputError, OutputError
from powdersolve.structures.exclusion import is_excluded
from powdersolve.structures.generators import split_of

CFG = BuildConfig(generators=("prototypes", "random"), system="cubic", count=8, seed=3, shard_size=2,
                  workers=1, max_atoms=24)


def _bytes(d: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(d.glob("shard-*.npz"))}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "a"
    build_dataset(CFG, out, progress=False)
    return out


def test_plan_splits_count_evenly():
    plan = shard_plan(CFG)
    assert [t.generator for t in plan] == ["prototypes"] * 2 + ["random"] * 2
    assert sum(t.count for t in plan) == 8 and [t.index for t in plan] == [0, 1, 2, 3]


def test_records_match_physics(built):
    records = load_dataset(built)
    assert 1 <= len(records) <= 8
    for r in records[:3]:
        s = sticks(r.crystal, q_max=8.5)
        np.testing.assert_allclose(r.q, s.q)
        np.testing.assert_allclose(r.intensity, s.intensity, rtol=1e-12)
        assert r.xrd_paper.shape == (1024,) and r.xrd_paper.dtype == np.float32 and r.xrd_paper.max() == 1.0
        assert r.split == split_of(r.crystal.formula, r.crystal.spacegroup)
        assert 195 <= r.crystal.spacegroup <= 230 and not is_excluded(*r.crystal.key)
    keys = [r.crystal.key for r in records]
    assert len(keys) == len(set(keys))
    assert {r.split for r in load_dataset(built, "train")} <= {"train"}


def test_resume_is_byte_identical(built, tmp_path):
    out = tmp_path / "b"
    build_dataset(CFG, out, shard=(1, 2), progress=False)
    assert sorted(_bytes(out)) == ["shard-00001.npz", "shard-00003.npz"]
    build_dataset(CFG, out, progress=False)
    assert _bytes(out) == _bytes(built)
    (out / "shard-00002.npz").unlink()
    build_dataset(CFG, out, progress=False)
    assert _bytes(out) == _bytes(built) and card_hash(out) == card_hash(built)
    json_a = json.loads((out / "data_card.json").read_text())
    assert json_a == json.loads((built / "data_card.json").read_text())


def test_other_settings_refused(built):
    with pytest.raises(OutputError):
        build_dataset(BuildConfig(generators=("random",), count=4, shard_size=2, workers=1), built, progress=False)


def test_data_card(built):
    card = json.loads((built / "data_card.json").read_text())
    records = load_dataset(built)
    assert card["n_records"] == len(records)
    assert card["crystal_systems"] == {"cubic": len(records)}
    assert sum(card["spacegroups"].values()) == len(records)
    assert [tuple(k[:2]) for k in card["keys"]] == [r.crystal.key for r in records]
    assert card["seed"] == 3 and card["card_hash"] == card_hash(built)
    assert set(card["shards"]) == {f"shard-{i:05d}.npz" for i in range(4)}
    assert "Space groups" in (built / "data_card.md").read_text()


def test_folders_combine_without_duplicates(built, tmp_path):
    import shutil

    other = tmp_path / "b"
    shutil.copytree(built, other)
    one = load_dataset(built)
    both = load_datasets([built, other])
    assert [r.crystal.key for r in both] == [r.crystal.key for r in one]
    val = load_datasets([built, other], "val")
    assert all(r.split == "val" for r in val) and len(val) == sum(r.split == "val" for r in one)


def test_query_points(built):
    records = load_dataset(built)
    ds = QueryPointDataset(records, points_side=4, seed=1)
    item = ds[0]
    assert item["points"].shape == (64, 3) and item["density"].shape == (64,)
    np.testing.assert_allclose(item["density"].numpy(),
                               density_at(records[0].crystal, item["points"].numpy().astype(np.float64)),
                               rtol=1e-4)
    assert np.array_equal(ds[0]["points"], item["points"])
    ds.set_epoch(1)
    assert not np.array_equal(ds[0]["points"], item["points"])


@pytest.mark.parametrize("spec", ["1", "a/b", "2/2", "-1/3"])
def test_bad_shard_spec(spec):
    with pytest.raises(InputError):
        parse_shard(spec)


def test_cli_sigkill_then_resume(tmp_path):
    """SIGKILL the CLI mid-build, rerun, and compare with an uninterrupted build byte for byte."""
    args = ["data", "build", "--generator", "prototypes,random", "--system", "cubic", "--count", "12",
            "--shard-size", "3", "--workers", "2", "--seed", "5", "--max-atoms", "24", "--quiet"]
    cmd = [sys.executable, "-m", "powdersolve"]
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run([*cmd, *args, "--out", str(ref)], check=True, capture_output=True)
    proc = subprocess.Popen([*cmd, *args, "--out", str(killed)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(killed.glob("shard-*.npz")):
        time.sleep(0.05)
    time.sleep(float(np.random.default_rng().uniform(0, 1.0)))
    os.killpg(proc.pid, signal.SIGKILL)  # the whole session: the CLI and its pool workers
    proc.wait()
    subprocess.run([*cmd, *args, "--out", str(killed)], check=True, capture_output=True)
    assert _bytes(killed) == _bytes(ref)
    assert card_hash(killed) == card_hash(ref)
    assert len(read_shard(killed / "shard-00000.npz")) == 3


def test_variants_keep_several_crystals_per_key(tmp_path):
    cfg = BuildConfig(generators=("prototypes",), system="166", count=12, seed=2, shard_size=6, workers=1,
                      max_atoms=12, perturb=0.3, group_swap=True, variants=3)
    out = tmp_path / "v"
    card = build_dataset(cfg, out, progress=False)
    records = load_dataset(out)
    counts = {}
    for r in records:
        counts[r.crystal.key] = counts.get(r.crystal.key, 0) + 1
    assert 1 < max(counts.values()) <= 3 and len(records) == card["n_records"]
    assert json.loads((out / "build.json").read_text())["variants"] == 3
    assert "up to 3 per (formula, space group)" in (out / "data_card.md").read_text()
    # The plain build of the same settings keeps one per key.
    plain = tmp_path / "p"
    build_dataset(BuildConfig(generators=("prototypes",), system="166", count=12, seed=2, shard_size=6,
                              workers=1, max_atoms=12, perturb=0.3, group_swap=True), plain, progress=False)
    assert len(load_dataset(plain)) == len(counts)
    with pytest.raises(InputError):
        BuildConfig(variants=0)
    with pytest.raises(InputError):
        BuildConfig(perturb=-1.0)
