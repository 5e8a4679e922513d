import math

import pytest
import torch

from SpineLabelerLib.training import losses


def test_bootstrapped_ce_keeps_exactly_the_hardest_tenth():
    """20 voxels, 2 classes: posteriors for the true class are known; the 2 hardest count."""
    p_true = torch.tensor(
        [
            0.99,
            0.9,
            0.05,
            0.8,
            0.7,
            0.6,
            0.95,
            0.5,
            0.45,
            0.4,
            0.85,
            0.75,
            0.65,
            0.55,
            0.02,
            0.3,
            0.35,
            0.97,
            0.93,
            0.91,
        ]
    )
    target = torch.tensor([0, 1] * 10).view(1, 20, 1, 1)
    p0 = torch.where(target.flatten() == 0, p_true, 1 - p_true)
    logits = torch.stack([p0.log(), (1 - p0).log()]).view(1, 2, 20, 1, 1).requires_grad_(True)
    loss = losses.bootstrapped_cross_entropy(logits, target, fraction=0.10)
    expected = -(math.log(0.05) + math.log(0.02)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    has_grad = (logits.grad.abs().sum(1) > 0).flatten().nonzero().flatten().tolist()
    assert has_grad == [2, 14]


def test_bootstrapped_ce_rounds_up_and_rejects_bad_fraction():
    logits = torch.zeros(1, 4, 3, 3, 3)
    target = torch.zeros(1, 3, 3, 3, dtype=torch.long)
    assert losses.bootstrapped_cross_entropy(logits, target).item() == pytest.approx(math.log(4))
    with pytest.raises(ValueError):
        losses.bootstrapped_cross_entropy(logits, target, fraction=0.0)


def test_dice_loss_and_score():
    target = torch.zeros(1, 4, 4, 4)
    target[0, :2] = 1
    perfect = (target * 40 - 20).unsqueeze(1)
    assert losses.dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.dice_loss(-perfect, target).item() == pytest.approx(1 - 1 / 65, abs=1e-4)
    empty = torch.zeros(1, 4, 4, 4)
    assert losses.dice_loss(torch.full((1, 1, 4, 4, 4), -20.0), empty).item() == pytest.approx(
        0, abs=1e-6
    )
    assert losses.dice_loss(torch.full((1, 1, 4, 4, 4), 20.0), empty).item() == pytest.approx(
        64 / 65, abs=1e-4
    )
    assert losses.dice_score(target.bool(), target.bool()) == 1.0
    half = target.clone()
    half[0, 1] = 0
    assert losses.dice_score(half, target) == pytest.approx(2 * 16 / (16 + 32))
    assert losses.dice_score(empty, empty) == 1.0
