"""outline_pass.py: a second net's outlines replace (or add to) the walk's, vertebra by
vertebra, on hand-built crops with a predictor that knows the true shapes."""

import numpy as np

from SpineLabelerLib.outline_pass import outline_again

SHAPE = (90, 60, 60)  # k (superior), j, i at 1 mm
PATCH = (64, 48, 48)  # a patch round one vertebra shows part of the other


def _truth() -> np.ndarray:
    """Two box vertebrae, 1 above 2, 10 voxels apart."""
    truth = np.zeros(SHAPE, np.int16)
    truth[50:75, 15:45, 15:45] = 1
    truth[15:40, 15:45, 15:45] = 2
    return truth


def _walked(truth: np.ndarray) -> np.ndarray:
    """What a net that stops short of the bone gives: each box two voxels thinner all round."""
    walked = np.zeros_like(truth)
    for label in (1, 2):
        inner = np.argwhere(truth == label)
        lo, hi = inner.min(0) + 2, inner.max(0) - 1
        walked[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = label
    return walked


def _centres(instances, order):
    return np.array([np.argwhere(instances == n).mean(0) for n in order])


def _outline_in_full_view(predict, instances, probability, order, mode="replace") -> int:
    """outline_again over a blank CT the field of view covers whole."""
    ct, valid = np.zeros(SHAPE, np.float32), np.ones(SHAPE, bool)
    centres = _centres(instances, order)
    return outline_again(
        predict, ct, valid, instances, probability, order, centres, PATCH, mode=mode
    )


def _knowing(truth: np.ndarray, centre_of_patch, other: bool = False):
    """A predictor that outlines the true vertebra at the patch's centre (not in memory), or
    with ``other`` the one beside it."""

    def predict(ct_patch, memory):
        start = np.round(centre_of_patch[0]).astype(int) - np.asarray(PATCH) // 2
        centre_of_patch.pop(0)
        labels = np.zeros(PATCH, np.int16)
        src = tuple(slice(max(s, 0), min(s + n, d)) for s, n, d in zip(start, PATCH, SHAPE))
        dst = tuple(slice(a.start - s, a.stop - s) for a, s in zip(src, start))
        labels[dst] = truth[src]
        middle = labels[tuple(n // 2 for n in PATCH)]
        found = (labels != middle) & (labels > 0) if other else (labels == middle) & (middle > 0)
        return (found & (memory < 0.5)).astype(np.float32)

    return predict


def test_each_vertebra_takes_the_second_nets_fuller_outline_and_its_probability():
    truth = _truth()
    instances = _walked(truth)
    probability = np.where(instances > 0, 200, 0).astype(np.uint8)
    order = [1, 2]
    centres = _centres(instances, order)
    ct = np.zeros(SHAPE, np.float32)
    valid = np.ones(SHAPE, bool)
    changed = outline_again(
        _knowing(truth, list(centres)), ct, valid, instances, probability, order, centres, PATCH
    )
    assert changed == 2
    assert np.array_equal(instances, truth)
    assert (probability[truth > 0] >= 128).all() and (probability[truth == 0] < 128).all()


def test_an_outline_of_another_vertebra_leaves_the_walks_mask():
    truth = _truth()
    instances = _walked(truth)
    before = instances.copy()
    probability = np.zeros(SHAPE, np.uint8)
    order = [1, 2]
    centres = _centres(instances, order)
    other, found = _knowing(truth, list(centres), other=True), []

    def predict(ct, memory):
        outline = other(ct, memory)
        found.append(int(outline.sum()))
        return outline

    changed = _outline_in_full_view(predict, instances, probability, order)
    assert min(found) > 0  # each patch held an outline: of the wrong vertebra
    assert changed == 0 and np.array_equal(instances, before)


def test_the_vertebra_above_keeps_its_voxels_and_the_view_bounds_the_outline():
    truth = _truth()
    instances = _walked(truth)
    order = [1, 2]
    centres = _centres(instances, order)
    valid = np.ones(SHAPE, bool)
    valid[:20] = False  # the field of view ends inside vertebra 2
    fair = _knowing(truth, [centres[0]])
    greedy = _knowing(np.where(truth > 0, 2, 0), [centres[1]])  # both boxes, memory ignored
    calls = iter([fair, lambda ct, memory: greedy(ct, np.zeros_like(memory))])
    outline_again(
        lambda ct, memory: next(calls)(ct, memory),
        np.zeros(SHAPE, np.float32),
        valid,
        instances,
        np.zeros(SHAPE, np.uint8),
        order,
        centres,
        PATCH,
    )
    assert np.array_equal(instances == 1, truth == 1)
    assert not instances[:20].any()
    assert np.array_equal(instances[20:] == 2, truth[20:] == 2)


def test_add_mode_keeps_the_walks_outline_and_adds_only_thick_parts():
    """Vertebra 1 has a process (8 x 10 x 8 voxels) behind its box; the walk has the box one
    voxel thinner all round and no process. The second net knows the truth but misses the
    walk's top slice: in "add" mode the process joins the walk's outline, the one-voxel rim
    does not, and no voxel of the walk's outline is lost."""
    truth = np.zeros(SHAPE, np.int16)
    truth[50:75, 15:45, 15:45] = 1
    truth[58:66, 45:55, 26:34] = 1  # the process
    truth[15:40, 15:45, 15:45] = 2
    instances = np.zeros_like(truth)
    instances[51:74, 16:44, 16:44] = 1
    instances[16:39, 16:44, 16:44] = 2
    walked = instances.copy()
    probability = np.where(instances > 0, 200, 0).astype(np.uint8)
    order = [1, 2]
    centres = _centres(instances, order)
    knowing = _knowing(truth, list(centres))

    def predict(ct, memory):
        found = knowing(ct, memory)
        found[-22:] = 0  # the patch's top 22 slices: vertebra 1's top two among them
        return found

    grown = _outline_in_full_view(predict, instances, probability, order, mode="add")
    assert grown == 1  # vertebra 2 has no thick part to add
    assert (instances[walked > 0] == walked[walked > 0]).all()
    assert (instances[59:65, 46:54, 27:33] == 1).all()
    assert (probability[59:65, 46:54, 27:33] >= 128).all()
    rim = (truth > 0) & (walked == 0)
    rim[56:68, 43:56, 24:36] = False  # where the process meets the box
    assert not instances[rim].any()


def _boxes_and_a_process():
    """Two box vertebrae, 1 with a process behind it, and the walk's masks: the boxes."""
    truth = np.zeros(SHAPE, np.int16)
    truth[50:75, 15:45, 15:45] = 1
    truth[58:66, 45:55, 26:34] = 1  # the process behind
    truth[15:40, 15:45, 15:45] = 2
    instances = truth.copy()
    instances[58:66, 45:55, 26:34] = 0
    probability = np.where(instances > 0, 200, 0).astype(np.uint8)
    return truth, instances, probability


def test_add_behind_takes_the_process_behind_not_the_bone_beside_and_skips_the_others():
    """Vertebra 1 has a process behind its box (the midline) and a wing beside it (where a
    thoracic vertebra's rib leaves it); the second net outlines both. With reach "behind" only
    the process is added; vertebra 2, reach None, is not outlined (no prediction for it)."""
    truth, instances, probability = _boxes_and_a_process()
    truth[58:66, 20:30, 45:55] = 1  # the wing beside
    order = [1, 2]
    centres = _centres(instances, order)
    knowing = _knowing(truth, list(centres))
    calls = []

    def predict(ct, memory):
        calls.append(1)
        return knowing(ct, memory)

    ct, valid = np.zeros(SHAPE, np.float32), np.ones(SHAPE, bool)
    grown = outline_again(
        predict, ct, valid, instances, probability, order, centres, PATCH, None, "add",
        ["behind", None],
    )  # fmt: skip
    assert grown == 1 and len(calls) == 1
    assert (instances[59:65, 46:54, 27:33] == 1).all()
    assert not instances[58:66, 20:30, 45:55].any()
    assert np.array_equal(instances == 2, truth == 2)


def test_add_never_reaches_ahead_of_the_walks_front():
    """The second net takes a tube lying against the front of vertebra 1's body (an aorta
    bright with contrast) as its bone, and its process behind too: in "add" mode the process
    joins, the tube does not, beyond the one voxel of slack ahead of the walk's front."""
    seen, instances, probability = _boxes_and_a_process()
    seen[52:73, 4:15, 25:35] = 1  # the tube, touching the body's front (j = 15)
    order = [1, 2]
    centres = _centres(instances, order)
    grown = _outline_in_full_view(
        _knowing(seen, list(centres)), instances, probability, order, mode="add"
    )
    assert grown == 1
    assert (instances[59:65, 46:54, 27:33] == 1).all()
    assert not instances[:, :14].any()
