"""The outline flags mean one setting each, in `spinelabeler segment` and in the benchmarks."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

from SpineLabelerLib.bone_edges import BoneEdgeSettings
from SpineLabelerLib.cli import build_parser
from SpineLabelerLib.commands.outline_options import (
    OUTLINE_FLAGS,
    add_outline_options,
    apply_outline_options,
    describe_outline_options,
)
from SpineLabelerLib.pipeline import SegmentSettings

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def parsed(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_outline_options(parser)
    return parser.parse_args(list(flags))


def test_each_flag_changes_its_own_setting_and_no_other():
    default = SegmentSettings()
    assert apply_outline_options(default, parsed()) == default
    assert describe_outline_options(parsed()) == ""
    expected = {
        "--real-shapes": {"outline_mode": "replace"},
        "--no-outline-pass": {"outline_weights_dir": None},
        "--no-edge-snap": {"edge_snap": None},
        "--bone-edges": {"bone_edges": BoneEdgeSettings()},
    }
    assert set(expected) == set(OUTLINE_FLAGS)
    for flag, changes in expected.items():
        settings = apply_outline_options(default, parsed(flag))
        changed = {
            name: getattr(settings, name)
            for name in vars(default)
            if getattr(settings, name) != getattr(default, name)
        }
        assert changed == changes, flag
        assert describe_outline_options(parsed(flag)) == f"; {flag}"


def test_contradicting_flags_are_refused():
    with pytest.raises(ValueError, match="contradict"):
        apply_outline_options(SegmentSettings(), parsed("--real-shapes", "--no-outline-pass"))


def _benchmark_parser_flags(name: str, monkeypatch) -> set[str]:
    """The flags a benchmark's --help lists (its module loaded, its main asked for --help)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    seen: list[str] = []

    def capture(self, args=None, namespace=None):
        seen.extend(option for action in self._actions for option in action.option_strings)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        module.main([])
    return set(seen)


@pytest.mark.parametrize("name", ["accuracy", "real"])
def test_the_benchmarks_take_every_outline_flag_of_segment(name, monkeypatch):
    segment = build_parser()._subparsers._group_actions[0].choices["segment"]
    segment_flags = {o for a in segment._actions for o in a.option_strings}
    assert set(OUTLINE_FLAGS) <= segment_flags
    assert set(OUTLINE_FLAGS) <= _benchmark_parser_flags(name, monkeypatch)
