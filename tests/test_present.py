from dataclasses import replace

import numpy as np
from PIL import Image

from explorer.identify.answer import IdentifyResult, Prediction, clade_answer
from explorer.identify.present import cam_overlays, predictions_html, rollup_markdown, topk_label

EVIL = "<script>alert('x')</script>"


def make_result(name=EVIL, common="Bad <b>bird</b>", background=False):
    pred = Prediction(
        0,
        name,
        common,
        {"kingdom": "Animalia", "genus": "<img src=x onerror=alert(1)>"},
        "genus",
        None,
        0.5,
        is_background=background,
        note="odd & <note>",
    )
    roll = clade_answer("genus", name, 0.8, 0.78, f"probably genus {name}, 80%")
    return IdentifyResult(
        model="m", predictions=(pred,), rollup=roll, cams=np.zeros((1, 8, 8), np.float32), cam_method="gradcam"
    )


def test_html_escapes_names_lineage_and_notes():
    html = predictions_html(make_result())
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "odd &amp; &lt;note&gt;" in html


def test_markdown_verdict_escapes():
    text = rollup_markdown(make_result(), "model <i>x</i>")
    assert "<script>" not in text and "<i>x" not in text
    assert text.splitlines()[0] == "### probably genus &lt;script&gt;alert('x')&lt;/script&gt;, 80%"
    assert "relative to the classes of **model &lt;i&gt;x&lt;/i&gt;**.</small>" in text


def test_background_titled_as_nothing_found():
    assert list(topk_label(make_result(background=True), "bird")) == ["1. No bird found: 50.0%"]


def test_small_probabilities_are_not_rounded_to_zero_and_captions_lead_with_them():
    from explorer.identify.present import cam_captions

    result = make_result(name="Setophaga cerulea", common="Cerulean Warbler")
    result = replace(result, predictions=(replace(result.predictions[0], probability=0.004),))
    assert topk_label(result, "bird") == {"1. Setophaga cerulea (Cerulean Warbler): 0.4%": 0.004}
    assert cam_captions(result, "bird") == ["1. 0.4% Setophaga cerulea"]


def test_overlays_one_per_prediction_and_downscaled():
    result = make_result()
    overlays = cam_overlays(Image.new("RGB", (1000, 500)), result)
    assert len(overlays) == 1 and overlays[0].shape == (192, 384, 3)


def test_predictions_frame_for_download_has_the_lineage_and_the_place_columns():
    from explorer.identify.present import predictions_frame
    from explorer.photos.places import Place

    result = make_result(name="Poecile atricapillus", common="Black-capped Chickadee")
    frame = predictions_frame(result)
    assert frame.to_dict("records") == [
        {
            "rank": 1,
            "scientific_name": "Poecile atricapillus",
            "common_name": "Black-capped Chickadee",
            "probability": 0.5,
            "is_background": False,
            "taxon_id": None,
            "resolved_rank": "genus",
            "kingdom": "Animalia",
            "phylum": None,
            "class": None,
            "order": None,
            "family": None,
            "genus": "<img src=x onerror=alert(1)>",  # CSV is data, not HTML: kept as it is
            "provenance": "image",
        }
    ]
    placed_first = replace(result.predictions[0], vision_probability=0.25, geo_score=0.9, vision_rank=2)
    placed = predictions_frame(replace(result, place=Place(43.7, -79.4, None), predictions=(placed_first,))).iloc[0]
    assert (placed["image_only_probability"], placed["geo_score"], placed["image_only_rank"]) == (0.25, 0.9, 2)


def test_a_class_agnostic_method_is_shown_once_and_said_so(tiny_classifier, photo_rgb):
    from explorer.identify.answer import identify
    from explorer.identify.present import cam_captions, cam_gallery_title, cam_overlays

    result = identify(tiny_classifier, photo_rgb, top_k=3, cam_method="eigencam")
    assert result.cams.shape[0] == 3  # the API still gives one (identical) map per suggestion
    assert len(cam_overlays(photo_rgb, result)) == 1 and cam_captions(result) == ["every suggestion (eigencam)"]
    assert cam_gallery_title(result).endswith("it ignores the class, so it is the same for every suggestion")
    other = identify(tiny_classifier, photo_rgb, top_k=3, cam_method="gradcam++")
    assert len(cam_overlays(photo_rgb, other)) == 3 and len(cam_captions(other)) == 3
