"""What the place changed: the prior's fixes, breaks and changes, counted on hand-made rows."""

import numpy as np
import pytest
from conftest import ROOT

from explorer.diagnose.schema import load_table


def geo_table(table):
    """The hand table with places: photo 0 (right) broken by the prior, photo 1 (wrong) fixed, photo 2 changed
    from one wrong answer to another, photo 3 untouched, photo 4 out of vocabulary, photo 5 without a place."""
    t = table.copy()
    t["lat"] = [1.0, 2.0, 3.0, 4.0, 5.0, np.nan]
    t["lon"] = 0.0
    t["obs_date"] = ""
    t["location_source"] = "test"
    t["geo_correct_1"] = [False, True, False, t["correct_1"].iloc[3], False, t["correct_1"].iloc[5]]
    t["geo_pred_class_index"] = t["pred_class_index"].to_numpy().copy()
    t.loc[0, "geo_pred_class_index"] = t.loc[0, "pred_class_index"] + 1
    t.loc[1, "geo_pred_class_index"] = t.loc[1, "true_class_index"]
    t.loc[2, "geo_pred_class_index"] = t.loc[2, "pred_class_index"] + 1
    t["geo_pred_name"] = "x"
    return t


def test_geo_effect_counts_fixes_breaks_and_changes(hand_table):
    from explorer.diagnose.geo_effect import geo_effect, geo_effect_by_clade, geo_rows, has_geo

    assert not has_geo(hand_table)
    t = geo_table(hand_table)
    assert has_geo(t)
    effect = geo_effect(t)
    in_vocab_placed = int((t["in_vocab"] & t["lat"].notna()).sum())
    assert effect.photos_with_place == in_vocab_placed
    assert (effect.fixed, effect.broke, effect.changed, effect.wrong_to_other_wrong) == (1, 1, 3, 1)
    per_family = geo_effect_by_clade(t, "family")
    assert per_family["fixed"].sum() == 1 and per_family["broke"].sum() == 1
    assert (per_family["net"] == per_family["fixed"] - per_family["broke"]).all()
    assert geo_rows(t, "fixed")["photo_id"].tolist() == [t.loc[1, "photo_id"]]
    assert geo_rows(t, "broke")["photo_id"].tolist() == [t.loc[0, "photo_id"]]
    family = t.loc[1, "true_family"]
    assert len(geo_rows(t, "fixed", "family", family)) == 1
    assert len(geo_rows(t, "fixed", "family", "Nonexistidae")) == 0
    with pytest.raises(ValueError, match="kind"):
        geo_rows(t, "improved")


@pytest.mark.skipif(not (ROOT / "assets" / "eval" / "inat_bird.parquet").is_file(), reason="shipped table")
def test_shipped_bird_table_has_held_out_places_and_geo_counts():
    from explorer.diagnose.geo_effect import geo_effect

    effect = geo_effect(load_table(ROOT / "assets" / "eval" / "inat_bird.parquet"))
    assert effect.photos_with_place > 2000
    assert set(effect.location_sources) == {"held-out eBird record of the true species"}
    assert effect.fixed > 0 and effect.broke > 0
