"""A vertebra has no cavity: the voxels each vertebra's mask encloses are its own.

Why: real marrow is not the phantoms' even cancellous bone. Fatty islands in a real
vertebral body (-20 to 170 HU) look like soft tissue to the stage-2 net, trained on
phantoms, which leaves them out as small holes inside the body. On verse005 (fatty marrow)
the final masks enclosed 4041 such voxels in 2128 holes, 95 % of them inside the expert's
vertebra; on verse008 546 (92 %); on five development phantoms 23-369 per case. Filling
them lifts verse005's outline Dice by 0.7 points and verse008's by 0.15, and the phantoms'
by 0.00-0.04. No threshold: only what one vertebra wholly encloses (in 3D, so the spinal
canal, open above and below, is never filled) and no other vertebra holds.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from SpineLabelerLib.image import grow_box


def fill_cavities(labels: np.ndarray) -> np.ndarray:
    """``labels`` (K, J, I), uint labels, with every unlabelled voxel that one vertebra's
    mask encloses given to that vertebra; a new array."""
    out = labels.copy()
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        box = grow_box(box, 1, labels.shape)  # the box's rim is outside the vertebra
        mine = out[box] == label
        enclosed = ndimage.binary_fill_holes(mine) & (out[box] == 0)
        out[box][enclosed] = label
    return out
