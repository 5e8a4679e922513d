"""The record of which real cases chose which artefact, and each case's standing from it."""

from __future__ import annotations

import json

import pytest

from SpineLabelerLib import provenance
from SpineLabelerLib.pipeline import DEFAULT_WEIGHTS_DIR
from SpineLabelerLib.provenance import PIPELINE, CaseUse


def weights_folder(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("stage1.pt", "stage2.pt"):
        (tmp_path / name).write_bytes(name.encode())
    return tmp_path


def test_record_use_adds_itself_and_standing_reads_it(tmp_path):
    folder = weights_folder(tmp_path)
    gate = CaseUse("sub-a", "gate", "chosen over another file")
    provenance.record_use(folder, "stage2.pt", [gate])
    provenance.record_use(folder, "stage2.pt", [gate, CaseUse("sub-b", "trained", "fine-tuned")])
    provenance.record_use(folder, "stage1.pt", [])
    provenance.record_use(folder, PIPELINE, [CaseUse("sub-a", "rule", "a rule")])
    assert provenance.uses_of(folder, "stage2.pt") == (
        gate,
        CaseUse("sub-b", "trained", "fine-tuned"),
    )
    in_use = [(folder, n) for n in ("stage1.pt", "stage2.pt", PIPELINE)]
    a = provenance.standing("sub-a", in_use)
    assert a.chose == ("stage2.pt (gate)", "pipeline (rule)") and not a.held_out
    assert provenance.standing("sub-b", in_use).describe() == "chose: stage2.pt (trained)"
    c = provenance.standing("sub-c", in_use)
    assert c.held_out and c.describe().startswith("held out")
    second = weights_folder(tmp_path / "outline")  # a second stage2.pt, as the outline pass's
    provenance.record_use(second, "stage2.pt", [CaseUse("sub-b", "trained", "real shapes")])
    b = provenance.standing("sub-b", [*in_use, (second, "stage2.pt")])
    assert b.chose == ("stage2.pt (trained)", "outline/stage2.pt (trained)")


def test_a_replaced_or_unrecorded_file_is_unknown_never_held_out(tmp_path):
    folder = weights_folder(tmp_path)
    provenance.record_use(folder, "stage2.pt", [])
    assert provenance.uses_of(folder, "stage2.pt") == ()
    (folder / "stage2.pt").write_bytes(b"other weights")
    assert provenance.uses_of(folder, "stage2.pt") is None
    s = provenance.standing("sub-c", [(folder, "stage1.pt"), (folder, "stage2.pt")])
    assert s.unknown == ("stage1.pt", "stage2.pt") and not s.held_out
    assert "provenance unknown" in s.describe()


def test_a_fine_tuning_inherits_the_cases_of_its_init(tmp_path):
    shipped = weights_folder(tmp_path / "shipped")
    provenance.record_use(shipped, "stage2.pt", [CaseUse("sub-a", "gate", "g")])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "stage2.pt").write_bytes(b"fine-tuned")
    init = provenance.read_record(shipped)["stage2.pt"]
    provenance.record_use(mine, "stage2.pt", [CaseUse("sub-b", "trained", "t")], inherit=init)
    assert [u.case for u in provenance.uses_of(mine, "stage2.pt")] == ["sub-a", "sub-b"]


def test_unknown_role_and_format_are_refused(tmp_path):
    with pytest.raises(ValueError, match="role"):
        CaseUse("sub-a", "looked", "x")
    (tmp_path / provenance.FILE_NAME).write_text(json.dumps({"format": 99, "artefacts": {}}))
    with pytest.raises(ValueError, match="format"):
        provenance.read_record(tmp_path)


def test_the_shipped_record_matches_the_shipped_weights():
    """Every shipped weight file is recorded as it is (a new file needs its record), and the
    real case that chose the stage-2 file by its gate is in it."""
    for name in ("stage1.pt", "stage2.pt", "level_head.pt"):
        assert provenance.uses_of(DEFAULT_WEIGHTS_DIR, name) is not None, name
    gate = [u for u in provenance.uses_of(DEFAULT_WEIGHTS_DIR, "stage2.pt") if u.role == "gate"]
    assert [u.case for u in gate] == ["sub-verse008"]
    assert provenance.uses_of(DEFAULT_WEIGHTS_DIR, PIPELINE) is not None


def test_the_real_shapes_record_matches_its_weights_and_names_what_chose_them():
    from SpineLabelerLib.pipeline import REAL_SHAPES_WEIGHTS_DIR

    assert provenance.uses_of(REAL_SHAPES_WEIGHTS_DIR, "stage2.pt") is not None
    # the outline net only: a level head fit to an earlier net must not walk with this one
    assert not (REAL_SHAPES_WEIGHTS_DIR / "level_head.pt").exists()
    stage2 = {(u.case, u.role) for u in provenance.uses_of(REAL_SHAPES_WEIGHTS_DIR, "stage2.pt")}
    assert ("sub-verse008", "trained") in stage2 and ("sub-verse005", "gate") in stage2
    assert ("sub-verse005", "trained") not in stage2  # held out of its training


def test_a_copied_weight_file_keeps_its_record_and_adds_the_gate(tmp_path):
    run = weights_folder(tmp_path / "run")
    provenance.record_use(run, "stage2.pt", [CaseUse("sub-b", "trained", "t")], note="run")
    shipped = weights_folder(tmp_path / "shipped")
    provenance.record_use(shipped, "stage2.pt", [CaseUse("sub-old", "gate", "old file")])
    gate = CaseUse("sub-c", "gate", "picked on its figures")
    provenance.copy_artefact(run, "stage2.pt", shipped, uses=[gate])
    assert (shipped / "stage2.pt").read_bytes() == (run / "stage2.pt").read_bytes()
    assert provenance.uses_of(shipped, "stage2.pt") == (CaseUse("sub-b", "trained", "t"), gate)
    assert provenance.read_record(shipped)["stage2.pt"].note == "run"
    with pytest.raises(ValueError, match="no provenance record"):
        provenance.copy_artefact(run, "stage1.pt", shipped)
