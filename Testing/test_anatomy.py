import pytest

from SpineLabelerLib import anatomy


def test_table_holds_verse_labels_in_order():
    names = [v.name for v in anatomy.VERTEBRAE]
    assert names[:7] == [f"C{i}" for i in range(1, 8)]
    assert names[7:19] == [f"T{i}" for i in range(1, 13)]
    assert names[19:] == [f"L{i}" for i in range(1, 7)]
    assert [v.label for v in anatomy.VERTEBRAE] == list(range(1, 26))
    assert anatomy.vertebra("T12").label == 19 and anatomy.vertebra(20).name == "L1"


def test_neighbours_have_clearly_different_colours():
    for a, b in zip(anatomy.VERTEBRAE, anatomy.VERTEBRAE[1:]):
        distance = sum((x - y) ** 2 for x, y in zip(a.color_rgb, b.color_rgb)) ** 0.5
        assert distance > 60, (a.name, b.name, distance)


def test_regions_and_codes():
    assert {v.region for v in anatomy.VERTEBRAE} == set(anatomy.REGIONS)
    assert anatomy.vertebra("C7").region_class == 1
    assert anatomy.vertebra("T1").region_class == 2
    assert anatomy.vertebra("L6").region_class == 3
    assert anatomy.vertebra("L5").snomed_code == "49668003"
    assert len({v.snomed_code for v in anatomy.VERTEBRAE if v.name != "L6"}) == 24


def test_unknown_vertebra_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown vertebra"):
        anatomy.vertebra("S1")
