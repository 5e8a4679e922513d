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
