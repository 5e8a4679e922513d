import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_spine import tiny_case, tiny_source

from SpineLabelerLib import nets
from SpineLabelerLib.training.loop import TrainConfig, train

torch.set_num_threads(1)
TESTING = Path(__file__).parent
SMALL_NET = {"base_channels": 4, "depth": 2, "convs_per_level": 1}


def _cfg(**changes):
    raw = {
        "seed": 1,
        "steps": 4,
        "batch_size": 2,
        "spacing_mm": 3.0,
        "size_kji": [16, 8, 8],
        "net": SMALL_NET,
        "val_samples": 2,
        "log_every": 1,
        "val_every": 1000,
        "checkpoint_every": 1000,
        "threads": 1,
    }
    raw.update(changes)
    return TrainConfig.from_dict(raw)


def _sources():
    return tiny_source(4), tiny_source(1, "val")


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_config_rejects_unknown_keys_and_bad_sizes():
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"learning_rate": 1})
    with pytest.raises(ValueError, match="multiples of 4"):
        TrainConfig.from_dict({"size_kji": [10, 8, 8], "net": SMALL_NET})
    for name in ("stage1", "stage2"):
        cfg = TrainConfig.from_file(Path(__file__).parents[1] / "configs" / f"{name}.json")
        assert cfg.lr == 1e-3


@pytest.mark.parametrize(
    "stage, changes",
    [
        ("stage1", {"lr": 3e-3}),
        ("stage2", {"spacing_mm": 1.5, "size_kji": [16, 16, 16], "lr": 3e-3}),
    ],
)
def test_a_few_steps_lower_the_loss(tmp_path, stage, changes):
    steps = 40 if stage == "stage1" else 120
    cfg = _cfg(steps=steps, batch_size=2, augment={"max_rotation_deg": 5.0}, **changes)
    summary = train(stage, cfg, tmp_path, sources=_sources())
    losses = [r["loss"] for r in _log(tmp_path) if "loss" in r]
    assert len(losses) == steps
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    assert last < 0.8 * first, (first, last)
    assert summary["validation"]["dice"] >= 0.0
    weights = nets.load_model(tmp_path / f"{stage}.pt", stage)
    assert weights.weights_meta["steps"] == steps
    assert weights.weights_meta["validation"] == summary["validation"]


def test_checkpoint_round_trip_resumes_exactly(tmp_path):
    cfg = _cfg(steps=4)
    straight = train("stage1", cfg, tmp_path / "a", sources=_sources())["model"].state_dict()
    train("stage1", cfg, tmp_path / "b", steps=2, sources=_sources())
    with pytest.raises(FileExistsError, match="--resume"):
        train("stage1", cfg, tmp_path / "b", steps=4, sources=_sources())
    resumed = train("stage1", cfg, tmp_path / "b", steps=4, resume=True, sources=_sources())
    assert resumed["steps"] == 4
    state = resumed["model"].state_dict()
    for name, tensor in straight.items():
        assert torch.equal(tensor, state[name]), name
    losses_a = [r["loss"] for r in _log(tmp_path / "a") if "loss" in r]
    losses_b = [r["loss"] for r in _log(tmp_path / "b") if "loss" in r]
    assert len(losses_a) == 4
    assert losses_a == losses_b
    # a different seed is a different run
    other = train("stage1", _cfg(steps=4, seed=2), tmp_path / "c", sources=_sources())["model"]
    assert not torch.equal(other.state_dict()["head.weight"], straight["head.weight"])


def test_time_limit_stops_validated_and_saved_and_resume_goes_on(tmp_path):
    cfg = _cfg(steps=50, val_every=1000)
    summary = train("stage1", cfg, tmp_path, sources=_sources(), time_limit_s=0.0)
    assert summary["steps"] == 1  # the limit is checked after each step
    assert summary["validation"] is not None  # validated at the stop although val_every is 1000
    assert nets.load_model(tmp_path / "stage1.pt", "stage1").weights_meta["steps"] == 1
    assert (tmp_path / "stage1_best.pt").exists()
    resumed = train("stage1", cfg, tmp_path, steps=3, resume=True, sources=_sources())
    assert resumed["steps"] == 3


def test_init_starts_a_new_run_from_a_weight_file(tmp_path):
    cfg = _cfg(steps=2)
    train("stage1", cfg, tmp_path / "a", sources=_sources())
    start = nets.load_model(tmp_path / "a" / "stage1.pt", "stage1").state_dict()
    tuned = train(
        "stage1", _cfg(steps=1, lr=0.0), tmp_path / "b", sources=_sources(),
        init_weights=tmp_path / "a" / "stage1.pt",
    )  # fmt: skip
    state = tuned["model"].state_dict()
    for name, tensor in start.items():  # lr 0: the weights are the file's (BN statistics move)
        if "running" not in name and "num_batches" not in name:
            assert torch.equal(tensor.float(), state[name].float()), name
    meta = nets.load_model(tmp_path / "b" / "stage1.pt", "stage1").weights_meta
    assert meta["initialised_from"]["file"].endswith("stage1.pt")
    with pytest.raises(ValueError, match="network"):
        train(
            "stage1", _cfg(steps=1, net={"base_channels": 2, "depth": 2}), tmp_path / "c",
            sources=_sources(), init_weights=tmp_path / "a" / "stage1.pt",
        )  # fmt: skip
    with pytest.raises(nets.ModelFileError):
        train("stage2", _cfg(steps=1), tmp_path / "d", sources=_sources(),
              init_weights=tmp_path / "a" / "stage1.pt")  # fmt: skip


def test_frozen_batch_norms_keep_their_statistics_while_the_weights_learn(tmp_path):
    train("stage2", _cfg(steps=2), tmp_path / "a", sources=_sources())
    start = nets.load_model(tmp_path / "a" / "stage2.pt", "stage2").state_dict()
    cfg = _cfg(steps=3, freeze_batchnorm=True, val_every=2)  # a validation in between
    tuned = train(
        "stage2", cfg, tmp_path / "b", sources=_sources(), init_weights=tmp_path / "a" / "stage2.pt"
    )
    state = tuned["model"].state_dict()
    statistics = [n for n in start if "running" in n]
    assert statistics and all(torch.equal(start[n].float(), state[n].float()) for n in statistics)
    learned = [n for n in start if n.endswith("weight") and not torch.equal(start[n], state[n])]
    assert len(learned) > len(statistics) // 2  # convolutions and batch-norm scales moved


def test_disk_cache_round_trip_keeps_arrays_and_centroids(tmp_path):
    from SpineLabelerLib.training.data import CasePreparer

    fresh = CasePreparer(3.0, False)(tiny_source(1), 0)
    CasePreparer(3.0, False, tmp_path, 0)(tiny_source(1), 0)  # writes the cache
    assert len(list(tmp_path.glob("*.npz"))) == 1
    cached = CasePreparer(3.0, False, tmp_path, 0)(tiny_source(1), 0)
    assert np.array_equal(cached.ct, fresh.ct) and np.array_equal(cached.labels, fresh.labels)
    assert cached._centroids is not None  # read from the file, not recomputed
    assert sorted(cached._centroids) == sorted(fresh.centroids_kji())
    for label, centre in fresh.centroids_kji().items():
        np.testing.assert_allclose(cached._centroids[label], centre)


def test_stage2_samples_follow_the_protocol():
    from SpineLabelerLib.training.data import CasePreparer, StepSamples

    ds = StepSamples("stage2", tiny_source(2), CasePreparer(1.5, True), (16, 16, 16), seed=0)
    ct_case, lab_case = tiny_case(0)
    seen_memory = seen_empty = 0
    for n in range(40):
        x, y = ds[n]
        assert x.shape == (2, 16, 16, 16) and y.shape == (16, 16, 16)
        memory, target = x[1] > 0.5, y > 0
        assert not (memory & target).any()
        seen_memory += int(memory.any())
        seen_empty += int(not target.any())
        if target.any():
            # the target is one whole box (or its visible part): one label, CT bright there
            assert x[0][target].min() == pytest.approx((600 + 512) / 768 - 1, abs=1e-3)
    assert seen_memory > 10 and 0 < seen_empty < 20


def test_stage1_tight_crops_keep_only_the_spine_in_plane():
    """p_tight cuts the crop in-plane around the spine (air, background outside); at 0 the
    crops are those of the default sampling, draw for draw."""
    from SpineLabelerLib.training.data import CasePreparer, StepSamples
    from SpineLabelerLib.training.samples import CT_FILL, Stage1Sampling

    wide = tiny_source(1)
    prepare = CasePreparer(1.5, False)
    tight = Stage1Sampling(spine_bias=1.0, p_tight=1.0, tight_half_width_mm=(6.0, 6.0),
                           tight_shift_mm=0.0)  # fmt: skip
    plain = StepSamples("stage1", wide, prepare, (16, 32, 32), seed=0)
    same = StepSamples("stage1", wide, prepare, (16, 32, 32), seed=0,
                       stage1_sampling=Stage1Sampling(p_tight=0.0))  # fmt: skip
    cut = StepSamples("stage1", wide, prepare, (16, 32, 32), seed=0, stage1_sampling=tight)
    whole = StepSamples("stage1", wide, prepare, (16, 32, 32), seed=0,
                        stage1_sampling=Stage1Sampling(spine_bias=1.0))  # fmt: skip
    for n in range(6):
        x, y = plain[n]
        assert torch.equal(x, same[n][0]) and torch.equal(y, same[n][1])
        xt, yt = cut[n]
        kept = (xt[0] != CT_FILL).any(dim=0)  # (J, I): the in-plane box
        js, is_ = torch.nonzero(kept, as_tuple=True)
        assert 0 < js.max() - js.min() <= 9 and 0 < is_.max() - is_.min() <= 9  # +-6 mm at 1.5
        assert (yt[:, ~kept] == 0).all() and (yt > 0).any()  # the spine (boxes at j 6-13) kept
        assert torch.equal(xt[0][:, kept], whole[n][0][0][:, kept])  # the same crop, cut
    with pytest.raises(ValueError):
        _cfg(stage1_sampling={"p_tight": 2.0})
    with pytest.raises(TypeError):
        _cfg(stage1_sampling={"p_tite": 0.5})


def test_two_process_gloo_run_keeps_identical_weights(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(TESTING.parent))
    cmd = [
        str(Path(sys.executable).with_name("torchrun")),
        "--standalone",
        "--nproc_per_node",
        "2",
        str(TESTING / "ddp_worker.py"),
        str(tmp_path),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    initial = nets.build_model("stage1", nets.NetConfig(**SMALL_NET)).state_dict()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert not torch.equal(a["head.weight"], initial["head.weight"])  # it did train
    assert nets.load_model(tmp_path / "stage1.pt", "stage1").weights_meta["processes"] == 2


def test_cli_train_command(tmp_path):
    from SpineLabelerLib import cli

    args = cli.build_parser().parse_args(
        [
            "train",
            "stage2",
            "--config",
            "configs/stage2.json",
            "--out",
            str(tmp_path),
            "--steps",
            "5",
        ]
    )
    assert args.stage == "stage2" and args.steps == 5 and not args.resume


def test_cli_train_refuses_unusable_inputs_with_a_message(tmp_path, capsys):
    from SpineLabelerLib import cli

    bad = tmp_path / "bad.json"
    bad.write_text('{"lr": 0.001, "learnin_rate": 1}')
    config = str(Path(__file__).resolve().parent.parent / "configs" / "stage2.json")
    out = str(tmp_path / "o")
    cases = [
        (["--config", str(bad)], "learnin_rate"),
        (["--config", str(tmp_path / "none.json")], "no training config"),
        (["--config", config, "--data", str(tmp_path / "no_folder")], "is not a folder"),
        (["--config", config, "--init", str(tmp_path / "none.pt")], "weight file not found"),
    ]
    for args, message in cases:
        assert cli.main(["train", "stage2", "--out", out, *args]) == 2
        assert message in capsys.readouterr().err
    assert not Path(out).exists()  # nothing was started
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"a run")
    assert cli.main(["train", "stage2", "--out", str(tmp_path / "run"), "--config", config]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == b"a run"  # never overwritten


VERSE008 = Path("/work/shared/realdata/verse008")


@pytest.mark.skipif(not VERSE008.is_dir(), reason="needs the real VerSe case verse008")
def test_verse_folder_feeds_the_same_loader(tmp_path):
    from SpineLabelerLib.training.data import CasePreparer, StepSamples, VerseSource

    source = VerseSource(VERSE008)
    assert len(source) == 1 and "verse008" in source.key(0)
    ds = StepSamples("stage1", source, CasePreparer(3.0, False), (32, 32, 32), seed=0)
    classes = set()
    for n in range(6):
        x, y = ds[n]
        assert x.shape == (1, 32, 32, 32)
        classes |= set(np.unique(y.numpy()).tolist())
    assert classes <= {0, 2, 3} and 3 in classes  # T12-L5: thoracic and lumbar only


def test_missing_data_folder_is_a_clear_error(tmp_path):
    from SpineLabelerLib.training.data import VerseSource

    with pytest.raises(FileNotFoundError, match="not a folder"):
        VerseSource(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="VerSe or CSI"):
        VerseSource(tmp_path)


@pytest.mark.slow
def test_a_few_steps_on_real_phantom_crops_lower_the_loss(tmp_path):
    """The real generator's fast crop path (2 mm, 64 mm boxes) through the whole loop."""
    from SpineLabelerLib.training.data import PhantomSource

    phantom = {"spacing_mm": [2, 2, 2], "crop_labels": [14, 22], "roi_size_mm": [64, 64, 64]}
    cfg = _cfg(
        steps=40, spacing_mm=2.0, size_kji=[16, 16, 16], phantom=phantom, lr=3e-3, val_samples=2
    )
    sources = (PhantomSource(range(3), phantom), PhantomSource([500], phantom))
    train("stage2", cfg, tmp_path, sources=sources)
    losses = [r["loss"] for r in _log(tmp_path) if "loss" in r]
    assert np.mean(losses[-8:]) < 0.85 * np.mean(losses[:8])


def test_validate_stage1_figures_on_a_constant_net():
    """A net that says "thoracic" everywhere: Dice = 2 n_T / (N + n_T) for T and for the spine."""
    from SpineLabelerLib.training.loop import validate

    model = nets.Stage1Net(nets.NetConfig(**SMALL_NET))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0]))
    y = torch.zeros(8, 8, 8, dtype=torch.long)
    y[:2] = 2  # 128 thoracic voxels of 512
    y[2:3] = 3  # 64 lumbar voxels
    out = validate("stage1", model, [(torch.zeros(1, 8, 8, 8), y)])
    assert out["dice_thoracic"] == pytest.approx(2 * 128 / (512 + 128))
    assert out["dice_lumbar"] == 0.0 and "dice_cervical" not in out
    assert out["dice"] == pytest.approx(out["dice_thoracic"] / 2)
    assert out["dice_spine"] == pytest.approx(2 * 192 / (512 + 192))


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("configs/*.json")))
def test_every_shipped_config_is_valid(path):
    """A typo in a config should fail here, not minutes into a run on a lent GPU."""
    from SpineLabelerLib.training.samples import Stage2Sampling

    cfg = TrainConfig.from_file(path)
    Stage2Sampling(**cfg.stage2_sampling)
    assert cfg.lr > 0 and cfg.steps > 0
    # every phantom setting is a generate_case argument, but for the ninth fine-tuning's
    # arch_density: that option was reverted and its config says which commit to check out
    import inspect

    from SpineLabelerLib.phantom import generate_case
    from SpineLabelerLib.training.data import PhantomSource

    known = set(inspect.signature(generate_case).parameters)
    settings = PhantomSource([0], cfg.phantom).case_settings(0)
    assert set(settings) - known - {"arch_density"} == set()


def test_a_users_folder_is_split_the_same_way_for_the_nets_and_the_level_head():
    from SpineLabelerLib.training.data import FunctionSource
    from SpineLabelerLib.training.loop import real_split

    folder = FunctionSource(lambda n: (None, None), 12, "user")
    train, held = real_split(folder, val_cases=8)
    assert [train.key(n) for n in range(len(train))] == [f"user-{n}" for n in range(10)]
    assert [held.key(n) for n in range(len(held))] == ["user-10", "user-11"]  # the last fifth
    assert len(real_split(folder, val_cases=1)[1]) == 1  # at most val_cases
    train, held = real_split(FunctionSource(lambda n: (None, None), 4, "few"), val_cases=8)
    assert held is None and len(train) == 4  # too few to hold any out


def test_cli_train_says_when_resume_finds_no_run(tmp_path, capsys, monkeypatch):
    """--resume on an empty --out starts afresh (scripts always pass it), but not silently."""
    from SpineLabelerLib import cli
    from SpineLabelerLib.training import loop

    calls = []

    def fake_train(stage, cfg, out, **kwargs):
        calls.append(kwargs["resume"])
        return {"rank": 0, "steps": 0, "validation": {}, "wall_s": 0.0}

    monkeypatch.setattr(loop, "train", fake_train)
    config = str(Path(__file__).resolve().parent.parent / "configs" / "stage2.json")
    out = str(tmp_path / "typo")
    assert cli.main(["train", "stage2", "--config", config, "--out", out, "--resume"]) == 0
    assert calls == [True] and "no run to resume" in capsys.readouterr().err


def test_the_weights_carry_the_real_cases_that_chose_them_and_their_start(tmp_path):
    """A run on a user's folder records its training cases ("trained") and validation cases
    ("gate") beside each weight file, with the cases recorded for its --init file; a start
    file without a record leaves the run's files unrecorded (unknown, never held out)."""
    import SimpleITK as sitk

    from SpineLabelerLib import provenance
    from SpineLabelerLib.image import to_sitk
    from SpineLabelerLib.provenance import CaseUse

    real = tmp_path / "real"
    for n in range(5):
        name = f"sub-verse{n:03d}"
        (real / name).mkdir(parents=True)
        for image, suffix in zip(tiny_case(n), ("_ct.nii.gz", "_seg-vert_msk.nii.gz")):
            sitk.WriteImage(to_sitk(image), str(real / name / f"{name}{suffix}"))
    train("stage1", _cfg(steps=1), tmp_path / "a", sources=_sources())
    assert provenance.uses_of(tmp_path / "a", "stage1.pt") is None  # sources given: unknown
    provenance.record_use(tmp_path / "a", "stage1.pt", [CaseUse("sub-x", "gate", "g")])
    train("stage1", _cfg(steps=1, val_cases=1), tmp_path / "b", data_dir=real,
          init_weights=tmp_path / "a" / "stage1.pt")  # fmt: skip
    uses = provenance.uses_of(tmp_path / "b", "stage1.pt")
    assert [(u.case, u.role) for u in uses] == [("sub-x", "gate")] + [
        (f"sub-verse{n:03d}", "trained") for n in range(4)
    ] + [("sub-verse004", "gate")]
    assert provenance.uses_of(tmp_path / "b", "stage1_best.pt") == uses
    train("stage1", _cfg(steps=2, val_cases=1), tmp_path / "b", data_dir=real, resume=True)
    assert provenance.uses_of(tmp_path / "b", "stage1.pt") == uses  # the start kept on resume
    (tmp_path / "a" / "stage1.pt").write_bytes((tmp_path / "b" / "stage1.pt").read_bytes())
    train("stage1", _cfg(steps=1), tmp_path / "c", data_dir=real,
          init_weights=tmp_path / "a" / "stage1.pt")  # fmt: skip
    assert provenance.uses_of(tmp_path / "c", "stage1.pt") is None
