"""The two networks of the cascade, built from the same blocks, and their versioned weight files.

Blocks follow the paper (METHOD.md): 3x3x3 convolutions (stride 1) each followed by batch norm
and ReLU, 2x2x2 max pooling (stride 2), 4x4x4 transposed convolutions (stride 2), with skip
connections between encoder and decoder (a 3D U-Net after Roth et al. 2018).

- :class:`Stage1Net`: 1 channel (CT, [-1, 1]) -> 4 region logits (bg, C, T, L).
- :class:`Stage2Net`: 2 channels (CT, memory 0/1) -> 1 logit (the next vertebra's mask).

Tensors are ``(B, C, K, J, I)``; every spatial size must be a multiple of ``2 ** depth``
(:func:`pad_multiple` says by how much to pad).

Default width/depth (:class:`NetConfig`) are chosen for a 2-core CPU: base width 8, depth 4,
one conv per level (widths 8-16-32-64-128, 1.3 M parameters, receptive field 142 voxels)
instead of the usual 32+ channels and two convs per level. One conv per level halves the
full-resolution work (the costly part) while the 4th level keeps the receptive field wide
(vs. 116 voxels for depth 3 with two convs, at twice the cost); what is traded is capacity
for fine detail and unusual anatomy.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

WEIGHTS_FORMAT_VERSION = 1
KINDS = ("stage1", "stage2")


class ModelFileError(RuntimeError):
    """A weight file that cannot be used: unreadable, corrupt, another version or kind."""


@dataclass(frozen=True)
class NetConfig:
    """Architecture settings: width of the first level, number of poolings, convs per level."""

    base_channels: int = 8
    depth: int = 4
    convs_per_level: int = 1
    max_channels: int = 128

    def __post_init__(self) -> None:
        if self.base_channels < 1 or self.depth < 1 or self.convs_per_level < 1:
            raise ValueError(f"invalid NetConfig {self}")

    def widths(self) -> list[int]:
        """Channel count per level, level 0 (full resolution) .. depth (bottom)."""
        return [
            min(self.base_channels * 2**level, self.max_channels) for level in range(self.depth + 1)
        ]

    def receptive_field(self) -> int:
        """Receptive field (voxels, per axis) of one output voxel: the widest over output positions.

        Tracks the interval of input voxels an output voxel depends on back through every layer
        (a 3x3x3 conv widens it by one voxel of its level each side; a 2x2x2 pool doubles it;
        a 4x4x4 stride-2 transposed conv reads 2 coarse voxels per fine one), so the rounding
        of pooling and upsampling, which depends on the output position, is counted exactly.
        """
        n, top = self.convs_per_level, self.depth

        def encoder(level: int, a: int, b: int) -> tuple[int, int]:
            a, b = a - n, b + n
            return (a, b) if level == 0 else encoder(level - 1, 2 * a, 2 * b + 1)

        def decoder(level: int, a: int, b: int) -> tuple[int, int]:
            if level == top:
                return encoder(level, a, b)
            a, b = a - n, b + n
            skip = encoder(level, a, b)
            deep = decoder(level + 1, -((-a) // 2) - 1, -((-b) // 2))
            return min(skip[0], deep[0]), max(skip[1], deep[1])

        spans = [decoder(0, o, o) for o in range(self.multiple)]
        return max(b - a + 1 for a, b in spans)

    @property
    def multiple(self) -> int:
        return 2**self.depth


class ConvBNReLU(nn.Sequential):
    """3x3x3 conv (stride 1, padding 1) + batch norm + ReLU: ``(B, c_in, K, J, I) -> (B, c_out, K, J, I)``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv3d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm3d(c_out),
            nn.ReLU(inplace=True),
        )


def conv_stack(c_in: int, c_out: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[ConvBNReLU(c_in if i == 0 else c_out, c_out) for i in range(n)])


class Down(nn.Sequential):
    """2x2x2 max pool (stride 2) then convs: halves K, J, I."""

    def __init__(self, c_in: int, c_out: int, n: int) -> None:
        super().__init__(nn.MaxPool3d(2, stride=2), conv_stack(c_in, c_out, n))


class Up(nn.Module):
    """4x4x4 transposed conv (stride 2, padding 1: doubles K, J, I), concat skip, then convs."""

    def __init__(self, c_in: int, c_skip: int, c_out: int, n: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(c_in, c_out, 4, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm3d(c_out)
        self.convs = conv_stack(c_out + c_skip, c_out, n)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.up(x)))
        return self.convs(torch.cat([x, skip], dim=1))


class UNet3D(nn.Module):
    """Encoder-decoder FCN: ``(B, in_channels, K, J, I) -> (B, out_channels, K, J, I)``."""

    kind = "unet"

    def __init__(
        self, in_channels: int, out_channels: int, config: NetConfig = NetConfig()
    ) -> None:
        super().__init__()
        self.config = config
        w = config.widths()
        n = config.convs_per_level
        self.stem = conv_stack(in_channels, w[0], n)
        self.downs = nn.ModuleList([Down(w[i], w[i + 1], n) for i in range(config.depth)])
        self.ups = nn.ModuleList(
            [Up(w[i + 1], w[i], w[i], n) for i in reversed(range(config.depth))]
        )
        self.head = nn.Conv3d(w[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.config.multiple
        if any(s % m for s in x.shape[2:]):
            raise ValueError(
                f"spatial size {tuple(x.shape[2:])} must be a multiple of {m} (pad_multiple)"
            )
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return self.head(y)


class Stage1Net(UNet3D):
    """Semantic segmentation net: CT ``(B, 1, K, J, I)`` -> region logits ``(B, 4, K, J, I)``."""

    kind = "stage1"
    in_channels = 1
    out_channels = 4

    def __init__(self, config: NetConfig = NetConfig()) -> None:
        super().__init__(self.in_channels, self.out_channels, config)


class Stage2Net(UNet3D):
    """Iterative instance net: (CT, memory) ``(B, 2, K, J, I)`` -> next-vertebra logit ``(B, 1, K, J, I)``."""

    kind = "stage2"
    in_channels = 2
    out_channels = 1

    def __init__(self, config: NetConfig = NetConfig()) -> None:
        super().__init__(self.in_channels, self.out_channels, config)


_NET_CLASSES: dict[str, type[UNet3D]] = {"stage1": Stage1Net, "stage2": Stage2Net}


def build_model(kind: str, config: NetConfig = NetConfig()) -> UNet3D:
    if kind not in _NET_CLASSES:
        raise ValueError(f"unknown network kind {kind!r}; expected one of {KINDS}")
    return _NET_CLASSES[kind](config)


def pad_multiple(size: int, multiple: int) -> int:
    """Voxels to add to ``size`` to reach the next multiple of ``multiple``."""
    return (-int(size)) % int(multiple)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- weight files


def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of every tensor, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _storage_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Floating tensors in fp16 (storage only), integer buffers (BN counters) unchanged."""
    out = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        out[name] = t.half() if t.is_floating_point() else t.clone()
    return out


def plain_json(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` as plain JSON values (numpy scalars -> Python), so that the file loads safely."""
    return json.loads(
        json.dumps(meta, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    )


def save_weights(model: UNet3D, path: str | Path, meta: dict[str, Any] | None = None) -> str:
    """Write a versioned fp16 weight file; returns the tensors' sha256.

    The file holds format version, kind, architecture config, the fp16 state dict, its sha256
    and ``meta`` (training settings, steps, validation figures; JSON-like values only).
    """
    if model.kind not in KINDS:
        raise ValueError(f"cannot save a {model.kind!r} model; expected one of {KINDS}")
    state = _storage_state(getattr(model, "module", model))
    digest = state_dict_sha256(state)
    payload = {
        "format": "spinelabeler-weights",
        "format_version": WEIGHTS_FORMAT_VERSION,
        "kind": model.kind,
        "config": asdict(model.config),
        "state_dict": state,
        "sha256": digest,
        "meta": plain_json(meta or {}),
    }
    write_payload(payload, path)
    return digest


def write_payload(payload: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` to a temporary file, then rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(payload, buf)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


def read_weight_file(path: str | Path) -> dict[str, Any]:
    """The checked payload of a weight file (see :func:`save_weights`); raises ModelFileError."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"weight file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling/zip error means the file is unusable
        raise ModelFileError(
            f"{path} is not a readable SpineLabeler weight file ({exc.__class__.__name__}: {exc})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != "spinelabeler-weights":
        raise ModelFileError(f"{path} is not a SpineLabeler weight file")
    version = payload.get("format_version")
    if version != WEIGHTS_FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has weight format version {version}; this SpineLabeler reads version {WEIGHTS_FORMAT_VERSION}"
        )
    digest = state_dict_sha256(payload["state_dict"])
    if digest != payload.get("sha256"):
        raise ModelFileError(
            f"{path} is corrupt: tensor sha256 {digest[:12]}... does not match the stored {str(payload.get('sha256'))[:12]}..."
        )
    return payload


def load_model(path: str | Path, expected_kind: str, device: str | torch.device = "cpu") -> UNet3D:
    """Rebuild a network from a weight file, in float32 and eval mode, on ``device``.

    Refuses (ModelFileError) a missing, corrupt or other-version file, a file of another kind
    (a stage-2 file given as stage 1) and tensors that do not fit the stored architecture.
    """
    if expected_kind not in KINDS:
        raise ValueError(f"unknown network kind {expected_kind!r}; expected one of {KINDS}")
    payload = read_weight_file(path)
    if payload.get("kind") != expected_kind:
        raise ModelFileError(
            f"{path} holds a {payload.get('kind')!r} network, expected {expected_kind!r}"
        )
    known = {f.name for f in fields(NetConfig)}
    raw = payload.get("config") or {}
    if not isinstance(raw, dict) or set(raw) - known:
        raise ModelFileError(f"{path} has an unknown architecture config {raw!r}")
    try:
        model = build_model(expected_kind, NetConfig(**raw))
        state = {
            k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()
        }
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path} does not fit its stored architecture {raw}: {exc}") from None
    model.weights_meta = dict(payload.get("meta") or {})  # type: ignore[attr-defined]
    model.weights_sha256 = payload["sha256"]  # type: ignore[attr-defined]
    return model.to(device).eval()
