"""level_head.py and its fitting (training/level_head.py): features, file checks, the fit."""

from pathlib import Path

import numpy as np
import pytest
import torch

from SpineLabelerLib import nets
from SpineLabelerLib.level_head import (
    N_LEVELS,
    PRIOR_MIX,
    LevelHead,
    feature_count,
    load_level_head,
    patch_features,
    save_level_head,
    walk_level_ratios,
)
from SpineLabelerLib.training.level_head import fit_head, head_figures

TINY = nets.NetConfig(base_channels=2, depth=3)


def tiny_net(seed=0):
    torch.manual_seed(seed)
    return nets.build_model("stage2", TINY).eval()


def test_features_have_the_documented_length_and_count_the_predicted_mask():
    model = tiny_net()
    x = torch.randn(1, 2, 16, 24, 24)
    features, voxels = patch_features(model, x)
    assert features.shape == (1, feature_count(TINY.widths()))
    assert np.isfinite(features).all()
    assert voxels[0] == int((model(x) > 0).sum())
    pair, _ = patch_features(model, torch.cat([x, torch.randn(1, 2, 16, 24, 24)]))
    assert np.allclose(pair[0], features[0], atol=1e-4)  # a batch reads each patch alone


def separable_rows(rng, n_per_level=20, n_features=12):
    centres = rng.normal(0, 3, (N_LEVELS, n_features))
    levels = np.repeat(np.arange(N_LEVELS), n_per_level)
    features = centres[levels] + rng.normal(0, 0.5, (len(levels), n_features))
    return features.astype(np.float32), levels


def test_fit_learns_levels_it_can_tell_apart():
    rng = np.random.default_rng(0)
    x, y = separable_rows(rng)
    head = fit_head(x, y, weight_decay=0.01, iterations=300, seed=0)
    hx, hy = x + rng.normal(0, 0.3, x.shape).astype(np.float32), y
    figures = head_figures(head, hx, hy)
    assert figures["top1"] > 0.9
    assert figures["log_loss"] < 0.5 * figures["log_loss_uniform"]


def test_ratios_never_fall_below_the_prior_mix():
    rng = np.random.default_rng(1)
    x, y = separable_rows(rng)
    head = fit_head(x, y, weight_decay=0.0, iterations=300, seed=0)
    ratios = head.log_likelihood_ratios(x[:5])
    assert ratios.shape == (5, N_LEVELS)
    assert ratios.min() >= np.log(PRIOR_MIX) - 1e-5
    assert (ratios.argmax(1) == y[:5]).all() and ratios.max(1).min() > 1.0


def test_head_file_round_trip_and_refusals(tmp_path):
    head = LevelHead(12)
    torch.nn.init.normal_(head.linear.weight)
    path = tmp_path / "level_head.pt"
    save_level_head(head, path, "a" * 64, {"note": "test"})
    again = load_level_head(path, "a" * 64)
    features = np.random.default_rng(2).normal(size=(3, 12)).astype(np.float32)
    assert np.allclose(again.log_likelihood_ratios(features), head.log_likelihood_ratios(features))
    with pytest.raises(nets.ModelFileError, match="fit to stage-2 weights"):
        load_level_head(path, "b" * 64)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(nets.ModelFileError, match="not a readable"):
        load_level_head(broken, "a" * 64)


def test_walk_ratios_read_one_patch_per_vertebra_with_those_above_in_memory(monkeypatch):
    """Each vertebra's patch is centred on it, and only the vertebrae before it are memory."""
    instances = np.zeros((48, 32, 32), np.int16)
    instances[34:42, 12:20, 12:20] = 1
    instances[20:28, 12:20, 12:20] = 2
    instances[6:14, 12:20, 12:20] = 3
    seen = []

    def fake_features(model, x):
        for patch in x.numpy():
            seen.append((patch[1].sum(), patch[0][16, 12, 12]))
        return np.zeros((len(x), 4), np.float32), np.full(len(x), 1000)

    import SpineLabelerLib.level_head as level_head

    monkeypatch.setattr(level_head, "patch_features", fake_features)
    ct = np.zeros(instances.shape, np.float32)
    ct[instances > 0] = 0.5  # the patch centre lies on the vertebra
    head = LevelHead(4)
    centres = np.array([np.argwhere(instances == n).mean(axis=0) for n in (1, 2, 3)])
    out = walk_level_ratios(
        None, torch.device("cpu"), head, ct, instances, [1, 2, 3], centres, (32, 24, 24)
    )
    assert len(out) == 3 and all(r.shape == (N_LEVELS,) for r in out)
    memory_voxels = [m for m, _ in seen]
    assert memory_voxels[0] == 0  # the first has nothing above it
    assert memory_voxels[1] > 0 and memory_voxels[2] > 0
    assert all(centre == 0.5 for _, centre in seen)


def test_the_shipped_head_fits_the_shipped_stage2_net():
    from SpineLabelerLib.pipeline import DEFAULT_WEIGHTS_DIR

    stage2_sha = nets.read_weight_file(DEFAULT_WEIGHTS_DIR / "stage2.pt")["sha256"]
    head = load_level_head(DEFAULT_WEIGHTS_DIR / "level_head.pt", stage2_sha)
    widths = nets.NetConfig(**nets.read_weight_file(DEFAULT_WEIGHTS_DIR / "stage2.pt")["config"])
    assert head.linear.in_features == feature_count(widths.widths())
    assert head.meta["figures"]["heldout"]["rows"] > 0


def test_fast_settings_skip_the_count_check():
    from SpineLabelerLib.pipeline import SegmentSettings

    assert SegmentSettings().use_level_head and not SegmentSettings().fast().use_level_head


VERSE008 = Path("/work/shared/realdata/verse008")


@pytest.mark.skipif(not VERSE008.is_dir(), reason="needs the real VerSe case verse008")
def test_rows_can_come_from_real_ct_in_the_verse_layout():
    from SpineLabelerLib.commands.fit_level_head import DEFAULT_CONFIG
    from SpineLabelerLib.pipeline import DEFAULT_WEIGHTS_DIR
    from SpineLabelerLib.training.data import VerseSource
    from SpineLabelerLib.training.level_head import draw_rows
    from SpineLabelerLib.training.loop import TrainConfig

    model = nets.load_model(DEFAULT_WEIGHTS_DIR / "stage2.pt", "stage2")
    cfg = TrainConfig.from_file(Path(__file__).resolve().parent.parent / DEFAULT_CONFIG)
    features, levels = draw_rows(model, cfg, VerseSource(VERSE008), 4, log=lambda *a, **k: None)
    assert features.shape[1] == feature_count(model.config.widths()) and len(levels) >= 1
    assert set((levels + 1).tolist()) <= set(range(19, 25))  # T12-L5 are in the expert mask


def _tiny_stage2_file(tmp_path):
    path = tmp_path / "stage2.pt"
    nets.save_weights(tiny_net(), path)
    return path


def test_rows_do_not_depend_on_the_workers_that_draw_the_crops(monkeypatch):
    """Each crop has its own random stream: worker processes change the speed, not the rows."""
    import SpineLabelerLib.training.level_head as fitting
    from SpineLabelerLib.commands.fit_level_head import DEFAULT_CONFIG
    from SpineLabelerLib.training.loop import TrainConfig

    monkeypatch.setattr(fitting, "MIN_MASK_VOXELS", 0)  # a random tiny net predicts little
    cfg = TrainConfig.from_file(Path(__file__).resolve().parent.parent / DEFAULT_CONFIG)
    source = fitting.phantom_source(cfg, range(fitting.FIT_SEED_BASE, fitting.FIT_SEED_BASE + 2))
    quiet = dict(log=lambda *a, **k: None)
    alone = fitting.draw_rows(tiny_net(), cfg, source, 3, workers=0, **quiet)
    helped = fitting.draw_rows(tiny_net(), cfg, source, 3, workers=1, **quiet)
    assert alone[0].shape == (len(alone[1]), feature_count(TINY.widths())) and len(alone[1]) >= 4
    assert np.array_equal(alone[0], helped[0]) and np.array_equal(alone[1], helped[1])
    assert set(alone[1].tolist()) <= set(range(N_LEVELS))


def test_fit_level_head_command_writes_a_head_bound_to_its_stage2_file(tmp_path, monkeypatch):
    import SpineLabelerLib.training.level_head as fitting
    from SpineLabelerLib import cli
    from SpineLabelerLib.commands.fit_level_head import DEFAULT_CONFIG

    monkeypatch.setattr(fitting, "MIN_MASK_VOXELS", 0)
    stage2 = _tiny_stage2_file(tmp_path)
    out = tmp_path / "level_head.pt"
    argv = ["fit-level-head", "--stage2", str(stage2), "--out", str(out), "--cases", "1"]
    argv += ["--heldout-cases", "1", "--per-case", "2", "--iterations", "5", "--workers", "0"]
    argv += ["--device", "cpu"]
    assert cli.main(argv) == 0
    head = load_level_head(out, nets.read_weight_file(stage2)["sha256"])
    assert head.meta["figures"]["heldout"]["rows"] >= 1
    assert head.meta["device"].startswith("cpu")
    assert list(head.meta)[:2] == ["command", "config"]  # how it was asked, first
    assert head.meta["config"] == DEFAULT_CONFIG  # as named, not where it was found
    from SpineLabelerLib import provenance

    assert provenance.uses_of(tmp_path, "level_head.pt") is None  # its stage 2 has no record
    provenance.record_use(tmp_path, stage2.name, [provenance.CaseUse("sub-a", "gate", "g")])
    again = tmp_path / "again" / "level_head.pt"
    argv[argv.index(str(out))] = str(again)
    again.parent.mkdir()
    assert cli.main(argv) == 0
    assert [(u.case, u.role) for u in provenance.uses_of(again.parent, again.name)] == [
        ("sub-a", "gate"),  # the stage-2 file's cases chose the features it reads
        ("sub-verse008", "phantom_hu"),
    ]
    before = out.read_bytes()
    with pytest.raises(SystemExit, match="exists"):
        cli.main(argv)
    assert out.read_bytes() == before  # a head file is never overwritten


def test_fit_level_head_says_what_is_wrong_with_its_inputs(tmp_path):
    from SpineLabelerLib import cli

    stage2 = _tiny_stage2_file(tmp_path)
    out = str(tmp_path / "head.pt")
    cases = [
        (["--stage2", str(tmp_path / "none.pt")], "weight file not found"),
        (["--stage2", str(stage2), "--config", "no_such.json"], "no training config"),
        (["--stage2", str(stage2), "--data", str(tmp_path / "no_folder")], "is not a folder"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit, match=message):
            cli.main(["fit-level-head", "--out", out, *args])
    assert not (tmp_path / "head.pt").exists()


def test_fit_level_head_learns_real_shapes_from_expert_masks_rendered_as_ct(tmp_path, monkeypatch):
    """Masks rendered as CT join the phantoms' rows; the head file and the provenance record
    name them, so that a case the head was fit on is never judged with it."""
    import SimpleITK as sitk

    import SpineLabelerLib.training.level_head as fitting
    from SpineLabelerLib import cli, provenance
    from SpineLabelerLib.image import Image, to_sitk

    monkeypatch.setattr(fitting, "MIN_MASK_VOXELS", 0)
    kk, jj, ii = np.mgrid[0:60, 0:50, 0:50]
    lab = np.zeros(kk.shape, np.uint8)
    for n, label in enumerate((20, 21, 22)):  # three lumbar bodies, 2 mm slices
        top = 42 - 18 * n
        lab[(kk >= top) & (kk < top + 12) & ((ii - 25) ** 2 + (jj - 20) ** 2 <= 100)] = label
    masks = tmp_path / "masks"
    masks.mkdir()
    mask = Image(lab, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    sitk.WriteImage(to_sitk(mask), str(masks / "sub-x01_seg-vert_msk.nii.gz"))
    stage2 = _tiny_stage2_file(tmp_path)
    provenance.record_use(tmp_path, stage2.name, [provenance.CaseUse("sub-a", "gate", "g")])
    out = tmp_path / "level_head.pt"
    argv = ["fit-level-head", "--stage2", str(stage2), "--out", str(out), "--cases", "1"]
    argv += ["--heldout-cases", "1", "--per-case", "2", "--iterations", "5", "--workers", "0"]
    argv += ["--device", "cpu", "--rendered-masks", str(masks), "--renders", "2"]
    assert cli.main(argv) == 0
    head = load_level_head(out, nets.read_weight_file(stage2)["sha256"])
    assert head.meta["rendered_masks"] == ["sub-x01"] and head.meta["renders"] == 2
    uses = [(u.case, u.role) for u in provenance.uses_of(tmp_path, out.name)]
    assert ("sub-a", "gate") in uses and ("sub-x01", "trained") in uses
