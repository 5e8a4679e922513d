"""The outline options (``--real-shapes``, ``--no-outline-pass``, ``--no-edge-snap``,
``--bone-edges``) as one set, so that ``spinelabeler segment`` and the benchmarks that
measure it (benchmarks/accuracy.py, benchmarks/real.py) mean the same settings by the same
flag: a figure printed by a benchmark run with a flag is the one a user gets with it."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the pipeline (torch) is imported when a command runs, not on --help
    from SpineLabelerLib.pipeline import SegmentSettings

# flag -> help; the order is the order of --help and of describe_outline_options()
OUTLINE_FLAGS = {
    "--real-shapes": (
        "take the outlines of the stage-2 net fine-tuned on real expert masks "
        "(Resources/Models/real_shapes) whole, rim included: nearer a real expert's (by "
        "default it only adds the thick parts the walking net left out)"
    ),
    "--no-outline-pass": (
        "the walking net's outlines as they are (no real-shape net; e.g. to see what "
        "--weights alone draws)"
    ),
    "--no-edge-snap": (
        "keep the networks' outlines as they are (by default the voxel layer beside each "
        "vertebra that is its bone going on is added to it)"
    ),
    "--bone-edges": (
        "grow each vertebra over the CT's bone up to 1.5 mm beyond the network's outline "
        "(real lumbar CTs: +1.1-1.2 outline Dice points over the edge snap; near ribs it "
        "can take rib heads)"
    ),
}


def add_outline_options(parser: argparse.ArgumentParser) -> None:
    for flag, text in OUTLINE_FLAGS.items():
        parser.add_argument(flag, action="store_true", help=text)


def _chosen(args: argparse.Namespace) -> list[str]:
    return [flag for flag in OUTLINE_FLAGS if getattr(args, flag[2:].replace("-", "_"))]


def apply_outline_options(settings: SegmentSettings, args: argparse.Namespace) -> SegmentSettings:
    """``settings`` with the outline flags of ``args``; ValueError where two contradict."""
    chosen = _chosen(args)
    if "--real-shapes" in chosen and "--no-outline-pass" in chosen:
        raise ValueError("--real-shapes and --no-outline-pass contradict")
    if "--real-shapes" in chosen:
        settings = replace(settings, outline_mode="replace")
    if "--no-outline-pass" in chosen:
        settings = replace(settings, outline_weights_dir=None)
    if "--no-edge-snap" in chosen:
        settings = replace(settings, edge_snap=None)
    if "--bone-edges" in chosen:
        from SpineLabelerLib.bone_edges import BoneEdgeSettings

        settings = replace(settings, bone_edges=BoneEdgeSettings())
    return settings


def describe_outline_options(args: argparse.Namespace) -> str:
    """The outline flags chosen, for a result's header ('' for the defaults)."""
    return "".join(f"; {flag}" for flag in _chosen(args))
