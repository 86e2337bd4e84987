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


def test_priors_compared_in_one_query_as_each_alone(hand_table):
    """A second prior that fixes photo 2, breaks nothing, and moves photo 1 to another wrong answer: its counts
    are its own, on the pandas route and on the dashboard's Subset, and agree with geo_effect on its geo_view."""
    from explorer.diagnose.frames import Subset, to_frame
    from explorer.diagnose.geo_effect import (
        compare_priors,
        geo_effect,
        geo_effect_by_clade,
        geo_rows,
        geo_view,
        table_priors,
    )
    from explorer.diagnose.metrics import Filters, filter_view

    t = geo_table(hand_table)
    t["geo_prior"] = "first"
    t["other__geo_correct_1"] = [True, False, True, t["correct_1"].iloc[3], False, t["correct_1"].iloc[5]]
    t["other__geo_pred_class_index"] = t["pred_class_index"].to_numpy().copy()
    t.loc[1, "other__geo_pred_class_index"] = t.loc[1, "pred_class_index"] + 1
    t.loc[2, "other__geo_pred_class_index"] = t.loc[2, "true_class_index"]
    t["other__geo_pred_name"] = "y"
    for name in ("geo_confidence", "geo_true_prob"):
        t[name] = 0.5
        t[f"other__{name}"] = 0.5
    view = filter_view(to_frame(t), Filters())
    assert isinstance(view, Subset) and table_priors(view) == table_priors(t) == ["first", "other"]
    for table in (t, view):
        compared = compare_priors(table).set_index("prior")
        assert compared.loc["first", ["fixed", "broke", "net", "changed"]].tolist() == [1, 1, 0, 3]
        assert compared.loc["other", ["fixed", "broke", "net", "changed"]].tolist() == [1, 0, 1, 2]
        for prior in ("first", "other"):
            alone = geo_effect(geo_view(table, prior))
            assert compared.loc[prior, "top1_with_prior"] == alone.top1_geo
            assert compared.loc[prior, "photos"] == alone.photos_with_place
    # per clade, on the dashboard's route: a family the prior only broke has a net of -1 (polars counts unsigned)
    only_broken = t.copy()
    only_broken.loc[1, "geo_correct_1"] = False  # photo 1 no longer fixed
    per_family = geo_effect_by_clade(filter_view(to_frame(only_broken), Filters()), "family").set_index("clade")
    assert per_family.loc[t.loc[0, "true_family"], ["fixed", "broke", "net"]].tolist() == [0, 1, -1]
    fixed = geo_rows(geo_view(view, "other"), "fixed", only=["photo_id", "geo_pred_name"], keep_row=True)
    assert fixed[["photo_id", "geo_pred_name"]].values.tolist() == [[t.loc[2, "photo_id"], "y"]]
    assert list(fixed.columns) == ["photo_id", "geo_pred_name", "_row"]
