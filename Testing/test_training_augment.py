import math

import torch
import torch.nn.functional as F

from SpineLabelerLib.training import augment
from SpineLabelerLib.training.augment import AugmentSettings

torch.set_num_threads(1)


def _blobs(shape=(48, 56, 52)):
    """Image and labels: four boxes (12-16 voxels wide), label v carries intensity v / 4 on -1."""
    image = torch.full((1, 1, *shape), -1.0)
    labels = torch.zeros((1, *shape), dtype=torch.uint8)
    boxes = {
        1: (4, 18, 4, 18, 4, 18),
        2: (22, 36, 6, 20, 24, 40),
        3: (6, 20, 28, 44, 24, 38),
        4: (22, 36, 28, 42, 4, 18),
    }
    for v, box in boxes.items():
        k0, k1, j0, j1, i0, i1 = (b + 4 for b in box)  # 8+ voxels from every border
        image[0, 0, k0:k1, j0:j1, i0:i1] = v / 4
        labels[0, k0:k1, j0:j1, i0:i1] = v
    return image, labels


def test_identity_affine_changes_nothing():
    image, labels = _blobs()
    theta = torch.tensor([[[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]])
    out, (lab,) = augment.apply_affine(image, [labels], theta)
    assert torch.allclose(out, image, atol=1e-5)
    assert torch.equal(lab, labels)


def test_labels_move_with_their_intensity():
    """After random rotation + scaling, the voxels labelled v are where the image shows v / 4:
    same centroid (within half a voxel) and the pure-intensity voxels all carry label v."""
    image, labels = _blobs()
    settings = AugmentSettings(max_noise_sigma=0.0)
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        out, (lab,) = augment.augment(image, [labels], settings, g)
        assert lab.dtype == torch.uint8
        for v in range(1, 5):
            labelled = (lab[0] == v).nonzero().float()
            # pure: the whole 3x3x3 neighbourhood reads v / 4 (no edge mixing with other values)
            dev = F.max_pool3d((out - v / 4).abs(), 3, stride=1, padding=1)[0, 0]
            pure = dev < 0.01
            assert len(labelled) > 500 and pure.sum() > 200
            assert (lab[0][pure] == v).float().mean() > 0.99
            centre_pure = pure.nonzero().float().mean(0)
            assert torch.allclose(labelled.mean(0), centre_pure, atol=0.5), (v, seed)
            before = (labels[0] == v).nonzero().float().mean(0)
            assert (labelled.mean(0) - before).norm() > 0.5  # it really moved


def test_rotation_is_a_rotation_on_a_non_cubic_volume():
    """A 90-degree turn about k maps a point at (i, j) offset (a, 0) to (0, +-a) in voxels."""
    shape = (9, 21, 41)  # K, J, I; odd sizes put the centre on voxel (i, j, k) = (20, 10, 4)
    labels = torch.zeros((1, *shape), dtype=torch.uint8)
    labels[0, 4, 10, 20 + 6] = 1  # 6 voxels right of the centre along i
    g = torch.Generator().manual_seed(0)
    settings = AugmentSettings(max_rotation_deg=0.0, max_scale=0.0)
    theta = augment.random_affine(1, shape, settings, g)
    assert torch.allclose(theta[0, :, :3], torch.eye(3))
    a = math.pi / 2
    rot = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    half = torch.tensor([41 / 2, 21 / 2, 9 / 2])
    theta = torch.zeros(1, 3, 4)
    theta[0, :, :3] = torch.diag(1 / half) @ rot @ torch.diag(half)
    _, (lab,) = augment.apply_affine(torch.zeros(1, 1, *shape), [labels], theta)
    k, j, i = (lab[0] == 1).nonzero()[0].tolist()
    assert (k, i) == (4, 20) and abs(j - 10) == 6


def test_ranges_of_random_parameters():
    g = torch.Generator().manual_seed(3)
    settings = AugmentSettings()
    theta = augment.random_affine(200, (32, 32, 32), settings, g)
    a = theta[:, :, :3]
    scale = 1 / torch.linalg.det(a).abs() ** (1 / 3)
    assert scale.min() >= 0.8 - 1e-4 and scale.max() <= 1.2 + 1e-4
    assert scale.min() < 0.85 and scale.max() > 1.15
    img = torch.zeros(64, 1, 8, 8, 8)
    noisy = augment.add_noise(img, settings.max_noise_sigma, g)
    sig = noisy.flatten(1).std(1)
    assert (
        sig.max() <= settings.max_noise_sigma * 1.15 and sig.min() < settings.max_noise_sigma * 0.2
    )


def test_memory_channel_gets_no_noise():
    image = torch.zeros(1, 2, 8, 8, 8)
    image[:, 1, 2:6, 2:6, 2:6] = 1.0
    settings = AugmentSettings(max_rotation_deg=0.0, max_scale=0.0, max_noise_sigma=0.5)
    out, _ = augment.augment(image, [], settings, torch.Generator().manual_seed(1))
    assert out[:, 0].std() > 0
    assert torch.allclose(out[:, 1], image[:, 1], atol=1e-5)
