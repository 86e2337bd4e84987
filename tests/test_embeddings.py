"""Embeddings: pooled from the same forward pass, stored beside the table, searched by cosine (hand-built data)."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from explorer.models.features import EmbeddingCapture, normalise_rows, pool
from explorer.represent.embeddings import (
    EmbeddingStore,
    embed_images,
    embeddings_path,
    load_embeddings,
    nearest,
    photo_index,
    save_embeddings,
)


def test_pool_averages_space_or_tokens():
    grid = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert pool(grid).tolist() == [[1.5, 5.5, 9.5], [13.5, 17.5, 21.5]]
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 6.0]]])  # (1 photo, 2 tokens, 2 channels)
    assert pool(tokens).tolist() == [[2.0, 4.0]]
    with pytest.raises(ValueError, match="shape"):
        pool(torch.zeros(1, 2, 3, 4, 5))


def store_of(vectors, ids=None) -> EmbeddingStore:
    vectors = np.asarray(vectors, dtype=np.float32)
    ids = np.array(ids if ids is not None else [f"p{i}" for i in range(len(vectors))])
    return EmbeddingStore("m", "abc", ids, vectors)


def test_nearest_by_cosine_with_a_mask():
    store = store_of([[1, 0], [0, 1], [1, 1], [-1, 0], [2, 0.2]])
    positions, similarity = nearest(store, np.array([1.0, 0.0]), 3)
    assert positions.tolist() == [0, 4, 2]  # [2, 0.2] is nearly parallel; [1, 1] at 45 degrees
    assert similarity[0] == pytest.approx(1.0) and similarity[2] == pytest.approx(np.sqrt(0.5), abs=1e-3)
    keep = np.array([False, True, False, True, False])
    assert nearest(store, np.array([1.0, 0.0]), 5, keep)[0].tolist() == [1, 3]  # only two may be returned
    with pytest.raises(ValueError, match="3 dimensions"):
        nearest(store, np.zeros(3), 1)
    assert normalise_rows(np.zeros((1, 2))).tolist() == [[0.0, 0.0]]  # a zero vector stays zero


def test_store_round_trip_and_alignment_with_its_table(tmp_path):
    store = store_of([[1, 0], [0, 1], [3, 4]], ["b", "a", "c"])
    path = save_embeddings(store, embeddings_path(tmp_path / "t.parquet"))
    assert path.name == "t.embeddings.npz"
    back = load_embeddings(path)
    assert (back.model, back.weights_sha256, back.photo_ids.tolist()) == ("m", "abc", ["b", "a", "c"])
    assert back.unit[2].tolist() == pytest.approx([0.6, 0.8], abs=0.01)  # 8 bits per dimension
    assert np.abs(back.vectors - store.vectors.astype(np.float32)).max() <= 4 / 255 / 2 + 1e-6  # half a step
    table = pd.DataFrame(
        {"photo_id": ["a", "b", "c"], "status": ["ok", "ok", "unreadable: x"], "true_name": list("ABC")}
    )
    index = photo_index("t", table, back)
    assert index.photos["true_name"].tolist() == ["B", "A"] and index.store.photo_ids.tolist() == ["b", "a"]
    with pytest.raises(ValueError, match="1 embeddings have no row"):
        photo_index("t", table[table["photo_id"] != "c"], back)
    (tmp_path / "bad.embeddings.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not an embeddings file"):
        load_embeddings(tmp_path / "bad.embeddings.npz")


def test_identify_returns_the_embedding_of_its_own_forward_pass(tiny_classifier, photo_rgb):
    from explorer.identify.answer import identify

    result = identify(tiny_classifier, photo_rgb, 3)
    without_cams = identify(tiny_classifier, photo_rgb, 3, cam_method=None)
    batch = embed_images(tiny_classifier, [photo_rgb, Image.new("RGB", (40, 30), (10, 200, 30))])
    assert batch.shape == (2, result.embedding.shape[0])
    assert np.allclose(result.embedding, batch[0], atol=1e-5) and np.allclose(without_cams.embedding, batch[0])
    with torch.no_grad(), EmbeddingCapture(tiny_classifier.cam_layer) as capture:
        activations = []
        handle = tiny_classifier.cam_layer.register_forward_hook(lambda _m, _i, out: activations.append(out))
        tiny_classifier.module(tiny_classifier.preprocess(photo_rgb))
        handle.remove()
    assert np.allclose(capture.array()[0], activations[0].mean(dim=(2, 3))[0].numpy())  # the CAM layer's mean


def test_evaluate_keeps_the_embeddings_of_the_same_photos(tiny_classifier, tmp_path):
    from explorer.diagnose.model_pass import evaluate_photos

    paths = []
    for i, colour in enumerate([(250, 10, 10), (10, 250, 10), (10, 10, 250)]):
        paths.append(tmp_path / f"p{i}.png")
        Image.new("RGB", (48, 48), colour).save(paths[-1])
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    paths.append(tmp_path / "broken.jpg")
    manifest = pd.DataFrame(
        {
            "path": [p.name for p in paths],
            "scientific_name": "Poecile atricapillus",
            "common_name": "",
            "note": "",
            "source": "hand",
            "abs_path": [str(p) for p in paths],
        }
    )
    found = evaluate_photos(tiny_classifier, manifest, None, tmp_path, workers=0, progress=False, embed=True)
    store = found.embeddings
    assert store.photo_ids.tolist() == found.table["photo_id"].tolist() and store.vectors.shape[0] == 4
    images = [Image.open(p).convert("RGB") for p in paths[:3]]
    assert np.allclose(store.vectors[:3].astype(np.float32), embed_images(tiny_classifier, images), atol=1e-2)
    assert len(photo_index("t", found.table, store).photos) == 3  # the unreadable photo is not searched
