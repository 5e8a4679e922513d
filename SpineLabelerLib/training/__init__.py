"""Training of both networks: samples, augmentation, losses, the loop and its distributed mode.

- :mod:`.augment`: the paper's affine + noise augmentation in torch (runs on the GPU if any).
- :mod:`.losses`: bootstrapped cross entropy (stage 1), Dice loss (stage 2), Dice score.
- :mod:`.samples`: one stage-1 crop / one stage-2 patch from a prepared case (numpy).
- :mod:`.data`: where cases come from (phantoms drawn on the fly, VerSe folders) and the
  step-indexed datasets that make a run reproducible and resumable.
- :mod:`.loop`: ``train(stage, config, out_dir, ...)`` with checkpoints, logs, DDP, AMP.
"""
