"""``spinelabeler phantom``: VerSe layout, centroid JSON against the written labelmap,
same seed same bytes, refusal to overwrite, and the fixed benchmark set."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from SpineLabelerLib.cli import main
from SpineLabelerLib.image import index_to_lps
from SpineLabelerLib.io.centroids import read_verse_centroids
from SpineLabelerLib.io.reader import read_ct, read_labelmap
from SpineLabelerLib.phantom import FOVS, VARIANTS
from SpineLabelerLib.phantom.benchmark_set import benchmark_set_specs

ARGS = ["phantom", "--fov", "lumbar", "--seed", "5", "--spacing", "3", "3", "3"]


def test_writes_the_verse_layout_and_matching_centroids(tmp_path):
    out = tmp_path / "a"
    assert main([*ARGS, "-o", str(out), "--preview"]) == 0
    sub = "sub-ph000005"
    ct = read_ct(out / "rawdata" / sub / f"{sub}_ct.nii.gz")
    labels = read_labelmap(out / "derivatives" / sub / f"{sub}_seg-vert_msk.nii.gz", reference=ct)
    assert ct.array.dtype == np.int16 and labels.same_grid(ct)
    centroids = read_verse_centroids(out / "derivatives" / sub / f"{sub}_seg-subreg_ctd.json")
    assert sorted(centroids) == sorted(int(v) for v in np.unique(labels.array) if v)
    for lab, c in centroids.items():
        ijk = np.argwhere(labels.array == lab)[:, ::-1].mean(axis=0)
        assert np.allclose(index_to_lps(labels, ijk)[0], c, atol=1e-3)
    meta = json.loads((out / "derivatives" / sub / f"{sub}_phantom.json").read_text())
    assert meta["variant"] == "normal" and meta["seed"] == 5 and meta["labels"] == sorted(centroids)
    assert (out / "derivatives" / sub / f"{sub}_preview.png").stat().st_size > 10_000


def test_same_seed_same_bytes_and_no_silent_overwrite(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*ARGS, "-o", str(a)]) == 0
    assert main([*ARGS, "-o", str(b)]) == 0
    for rel in (
        "rawdata/sub-ph000005/sub-ph000005_ct.nii.gz",
        "derivatives/sub-ph000005/sub-ph000005_seg-vert_msk.nii.gz",
        "derivatives/sub-ph000005/sub-ph000005_seg-subreg_ctd.json",
    ):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert main([*ARGS, "-o", str(a)]) == 2
    assert main([*ARGS, "-o", str(a), "--force"]) == 0


def test_a_spacing_that_is_not_positive_or_far_too_fine_is_refused_before_anything_is_written(
    tmp_path, capsys
):
    base = ["phantom", "--fov", "lumbar", "-o", str(tmp_path / "out"), "--spacing"]
    assert main([*base, "0", "1", "1"]) == 2
    assert "positive" in capsys.readouterr().err
    assert main([*base, "0.05", "0.05", "0.05"]) == 2  # billions of voxels: not allocated
    assert "coarser spacing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_benchmark_set_covers_every_fov_and_variant():
    specs = benchmark_set_specs()
    assert len(specs) >= 40 and len({s.seed for s in specs}) == len(specs)
    assert len({s.case_id for s in specs}) == len(specs)
    assert {s.fov for s in specs} == set(FOVS)
    per_variant = Counter(s.variant for s in specs if s.fov != "leg")
    assert set(per_variant) == set(VARIANTS) and min(per_variant.values()) >= 4
    assert sum(s.fov == "leg" for s in specs) >= 4
    assert specs == benchmark_set_specs()  # fixed
    # cases are only ever appended: the first 48 keep the seeds their figures were quoted on
    assert [s.fov for s in specs[42:49]] == ["leg"] * 6 + ["lumbar-crop"]


def test_development_set_is_the_benchmark_plan_on_other_seeds():
    """Rules are tuned on the development cases, so they must share no seed with the benchmark
    (nor with training, validation and held-out seeds, all below 700000)."""
    bench, dev = benchmark_set_specs(), benchmark_set_specs(development=True)
    assert [(s.fov, s.variant) for s in dev] == [(s.fov, s.variant) for s in bench]
    assert not {s.seed for s in dev} & {s.seed for s in bench}
    assert min(s.seed for s in dev) >= 700_000 and dev[0].case_id == "dev000"
