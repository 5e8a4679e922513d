import pytest
import torch

from SpineLabelerLib import nets
from SpineLabelerLib.nets import ModelFileError, NetConfig, Stage1Net, Stage2Net

torch.set_num_threads(1)
SMALL = NetConfig(base_channels=4, depth=2, convs_per_level=1)


def test_output_shapes_of_both_nets():
    x = torch.randn(2, 1, 16, 24, 32)
    assert Stage1Net(SMALL)(x).shape == (2, 4, 16, 24, 32)
    assert Stage2Net(SMALL)(torch.randn(1, 2, 8, 16, 8)).shape == (1, 1, 8, 16, 8)
    with pytest.raises(ValueError, match="multiple of 4"):
        Stage1Net(SMALL)(torch.randn(1, 1, 10, 16, 16))


def test_default_config_is_small():
    assert NetConfig().widths() == [8, 16, 32, 64, 128]
    assert NetConfig().receptive_field() == 142
    assert NetConfig(8, 3, 2).receptive_field() == 116
    assert 5e5 < nets.count_parameters(Stage2Net()) < 2e6  # a 2-3 MB fp16 file


@pytest.mark.parametrize("config", [SMALL, NetConfig(base_channels=4, depth=3, convs_per_level=1)])
def test_receptive_field_bounds_the_gradient_support(config):
    """The centre output voxel depends on no input outside the analytic receptive field,
    and its gradient fills most of it (max pooling may leave the outermost rim unused)."""
    torch.manual_seed(0)
    rf = config.receptive_field()
    size = (rf + 24) // config.multiple * config.multiple + config.multiple
    net = Stage1Net(config).eval()
    x = torch.randn(1, 1, size, size, size, requires_grad=True)
    c = size // 2
    net(x)[0, :, c, c, c].sum().backward()
    support = (x.grad[0, 0].abs() > 0).nonzero()
    extent = (support.max(0).values - support.min(0).values + 1).tolist()
    assert all(e <= rf for e in extent), (extent, rf)
    assert all(e >= 0.8 * rf for e in extent), (extent, rf)
    half = rf // 2 + 1
    assert support.min() >= c - half and support.max() <= c + half


def test_weight_file_round_trip(tmp_path):
    torch.manual_seed(1)
    model = Stage2Net(SMALL)
    model.train()
    model(torch.randn(2, 2, 8, 8, 8))  # moves BN running statistics
    path = tmp_path / "stage2.pt"
    digest = nets.save_weights(model, path, {"steps": 3})
    loaded = nets.load_model(path, "stage2")
    assert loaded.weights_sha256 == digest and loaded.weights_meta == {"steps": 3}
    assert loaded.config == SMALL and not loaded.training
    x = torch.randn(1, 2, 8, 8, 8)
    with torch.no_grad():
        ref = model.eval()(x)
        out = loaded(x)
    assert torch.allclose(ref, out, atol=2e-2)  # fp16 storage
    for v in loaded.state_dict().values():
        assert v.dtype in (torch.float32, torch.int64)


def test_load_model_refuses_bad_files(tmp_path):
    path = tmp_path / "w.pt"
    nets.save_weights(Stage1Net(SMALL), path)
    with pytest.raises(ModelFileError, match="holds a 'stage1' network, expected 'stage2'"):
        nets.load_model(path, "stage2")
    with pytest.raises(ModelFileError, match="not found"):
        nets.load_model(tmp_path / "missing.pt", "stage1")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ModelFileError, match="not a readable"):
        nets.load_model(tmp_path / "junk.pt", "stage1")

    payload = torch.load(path, weights_only=True)
    key = next(iter(payload["state_dict"]))
    payload["state_dict"][key] = payload["state_dict"][key] + 1
    torch.save(payload, tmp_path / "corrupt.pt")
    with pytest.raises(ModelFileError, match="corrupt"):
        nets.load_model(tmp_path / "corrupt.pt", "stage1")

    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ModelFileError, match="version 99"):
        nets.load_model(tmp_path / "future.pt", "stage1")

    payload = torch.load(path, weights_only=True)
    payload["config"]["base_channels"] = 8  # tensors no longer fit the architecture
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(ModelFileError, match="does not fit"):
        nets.load_model(tmp_path / "mismatch.pt", "stage1")
