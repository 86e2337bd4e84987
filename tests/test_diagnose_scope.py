"""The dashboard's scope section from hand-built tables: exact shares and counts."""

import numpy as np
import pandas as pd

from explorer.diagnose.scope_effect import has_scope, open_set_tradeoff, scope_effect, scope_tradeoff
from explorer.diagnose.texts import scope_markdown


def scope_table() -> pd.DataFrame:
    """Five readable photos (three of known species) and an unreadable one; scope threshold 0, novelty 5."""
    return pd.DataFrame(
        {
            "status": ["ok"] * 5 + ["unreadable: truncated"],
            "in_vocab": [True, True, True, False, False, True],
            "scope_kind": "gate",
            "scope_score": [1.0, 2.0, -1.0, 0.5, 3.0, np.nan],
            "scope_threshold": 0.0,
            "in_scope": [True, True, False, True, True, False],
            "novelty_score": [9.0, 6.0, 4.0, 4.5, 7.0, np.nan],
            "novelty_threshold": 5.0,
        }
    )


def test_scope_tradeoff_counts_the_table_and_the_outside_scores():
    curve = scope_tradeoff(scope_table(), outside=[-3.0, -2.0, 0.0, 2.5], points=5)
    # thresholds are quantiles of all 9 scores; at the lowest everything is kept and accepted
    assert curve["threshold"].iloc[0] == -3.0 and curve["threshold"].iloc[-1] == 3.0
    assert curve["in_scope_kept"].iloc[0] == 1.0 and curve["out_of_scope_accepted"].iloc[0] == 1.0
    assert curve["in_scope_kept"].iloc[-1] == 0.2 and curve["out_of_scope_accepted"].iloc[-1] == 0.0
    middle = curve[curve["threshold"] == 0.5].iloc[0]  # the median of the 9 scores
    assert (middle["in_scope_kept"], middle["out_of_scope_accepted"]) == (0.8, 0.25)


def test_open_set_tradeoff_separates_known_from_unknown():
    curve = open_set_tradeoff(scope_table(), points=3)
    assert curve["threshold"].tolist() == [4.0, 6.0, 9.0]
    assert curve["known_kept"].tolist() == [1.0, 2 / 3, 1 / 3]
    assert curve["unknown_flagged"].tolist() == [0.0, 0.5, 1.0]


def test_scope_effect_at_the_rules_thresholds_and_its_words():
    effect = scope_effect(scope_table(), outside=[-3.0, -2.0, 0.0, 2.5])
    assert (effect.photos, effect.kept, effect.outside_photos, effect.outside_accepted) == (5, 4, 4, 2)
    assert (effect.known_photos, effect.unknown_photos, effect.known_kept, effect.unknown_flagged) == (3, 2, 2, 1)
    assert effect.open_set_auroc == 0.5  # known 9, 6, 4 vs unknown 4.5, 7: 3 of the 6 pairs ordered right
    text = scope_markdown(effect)
    assert "keeps 4 of 5 (80.0%)" in text and "accepts 2 of 4 (50.0%)" in text and "AUROC **0.500**" in text
    assert has_scope(scope_table()) and not has_scope(scope_table().drop(columns=["in_scope"]))


def test_the_section_reads_its_scores_once_sorted_and_its_parts_agree():
    from explorer.diagnose.frames import to_frame
    from explorer.diagnose.scope_effect import scope_scores

    scores = scope_scores(to_frame(scope_table()).lazy())  # what the dashboard passes
    assert scores.inside.tolist() == [-1.0, 0.5, 1.0, 2.0, 3.0]
    assert scores.known.tolist() == [4.0, 6.0, 9.0] and scores.unknown.tolist() == [4.5, 7.0]
    assert scores.kept == 4 and scores.first == {"scope_threshold": 0.0, "novelty_threshold": 5.0, "scope_kind": "gate"}
    assert scope_effect(scores, [0.0, 2.5]) == scope_effect(scope_table(), [2.5, 0.0])
    assert open_set_tradeoff(scores, points=3).equals(open_set_tradeoff(scope_table(), points=3))
    assert scope_tradeoff(scores, [2.5, -3.0], points=5).equals(scope_tradeoff(scope_table(), [-3.0, 2.5], points=5))


def test_without_a_novelty_threshold_nothing_is_counted_as_kept_or_flagged():
    effect = scope_effect(scope_table().assign(novelty_threshold=np.nan))
    assert (effect.known_photos, effect.unknown_photos, effect.known_kept, effect.unknown_flagged) == (3, 2, 0, 0)
    empty = scope_effect(scope_table().iloc[:0])
    assert (empty.photos, empty.kept, empty.known_photos) == (0, 0, 0) and np.isnan(empty.open_set_auroc)
