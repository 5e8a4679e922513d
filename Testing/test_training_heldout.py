import numpy as np
import torch

from SpineLabelerLib import nets
from SpineLabelerLib.training import heldout

torch.set_num_threads(1)


def test_predict_regions_pads_and_crops_back():
    model = nets.Stage1Net(nets.NetConfig(base_channels=2, depth=2, convs_per_level=1)).eval()
    with torch.no_grad():  # make the net say "class 3" everywhere
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 5.0]))
    ct = np.zeros((9, 10, 7), np.float32)
    out = heldout.predict_regions(model, ct)
    assert out.shape == (9, 10, 7) and out.dtype == np.uint8
    assert np.all(out == 3)


def test_model_card_states_the_run(tmp_path):
    from _tiny_spine import tiny_source

    from SpineLabelerLib.training.loop import TrainConfig, train

    cfg = TrainConfig.from_dict(
        {
            "steps": 2,
            "batch_size": 1,
            "size_kji": [16, 8, 8],
            "val_samples": 1,
            "threads": 1,
            "net": {"base_channels": 2, "depth": 2, "convs_per_level": 1},
        }
    )
    train(
        "stage1",
        cfg,
        tmp_path,
        sources=(tiny_source(2), tiny_source(1, "v")),
        command="spinelabeler train x",
    )
    card = heldout.model_card(
        "stage1", str(tmp_path / "stage1.pt"), {"pooled": {"dice_T": 0.5}}, "python -m x"
    )
    assert "Steps: 2 (2 samples)" in card
    assert "`spinelabeler train x`" in card and "dice_T" in card and "bootstrapped" in card


def test_clinical_spacing_draws_the_same_phantoms_on_a_clinical_grid():
    """--clinical-spacing changes the phantoms' spacing setting alone (None: a clinical draw)."""
    from SpineLabelerLib.training.data import PhantomSource
    from SpineLabelerLib.training.loop import TrainConfig

    phantom = {"spacing_mm": [1.0, 1.0, 1.0], "crop_labels": [12, 24], "roi_size_mm": [64, 64, 64]}
    cfg = TrainConfig.from_dict({"phantom": phantom, "lr": 5e-4})
    assert heldout.heldout_config(cfg, False) is cfg
    clinical = heldout.heldout_config(cfg, True)
    assert clinical.phantom == {**phantom, "spacing_mm": None} and clinical.lr == 5e-4
    assert cfg.phantom["spacing_mm"] == [1.0, 1.0, 1.0]  # the run's own config is untouched
    ct, labels = PhantomSource([200000], clinical.phantom).load(0)
    assert max(ct.spacing_mm) > 1.0 or min(ct.spacing_mm) < 1.0
    assert labels.array.shape == ct.array.shape and labels.array.any()
