"""The predict stage: which photos it predicts, in what order, and that its probabilities are the trained model's
own, averaged over the test-time views, through the same inference loop as validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import predicted_fixture as prf
from maskcls import artifacts
from maskcls.models import load_trained
from maskcls.paths import Paths
from maskcls.stages import predict
from maskcls.training.inference import VIEWS, predict_logits, predict_probabilities
from maskcls.training.runtime import Runtime

pytestmark = pytest.mark.xdist_group("predicted")
CPU = Runtime(torch.device("cpu"), "off", False)


@pytest.fixture
def root(tmp_path, tmp_path_factory):
    return prf.copy(tmp_path_factory, tmp_path / "repo")


def test_batches_are_the_rows_in_order_as_nchw_uint8():
    images = np.arange(5 * 4 * 3 * 3, dtype=np.uint8).reshape(5, 4, 3, 3)
    rows = np.array([4, 0, 2])
    parts = list(predict.batches(images, rows, batch_size=2))
    assert [tuple(p.shape) for p in parts] == [(2, 3, 4, 3), (1, 3, 4, 3)]
    stacked = torch.cat(parts).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(stacked, images[rows])


def test_out_of_fold_rows_are_exactly_the_held_out_persons_photos(root):
    paths = Paths(root)
    truth = artifacts.read_truth(paths.labels_dir)
    folds = artifacts.read_folds(paths.folds)
    rows = predict.oof_rows(paths, 0)
    held_out = set(folds.loc[folds.fold == 0, "person"])
    assert set(truth.loc[rows, "person"]) == held_out
    assert len(rows) == truth.person.isin(held_out).sum()
    assert (np.diff(rows) > 0).all()  # index order


def test_the_files_hold_every_eval_photo_and_the_held_out_photos(root):
    paths = Paths(root)
    for model in prf.MODELS:
        ev = artifacts.fold_predictions(paths, model, 0, "eval")
        oof = artifacts.fold_predictions(paths, model, 0, "oof")
        n_eval = len(artifacts.read_index(paths.index_dir, "eval"))
        np.testing.assert_array_equal(ev["rows"], np.arange(n_eval))
        np.testing.assert_array_equal(oof["rows"], predict.oof_rows(paths, 0))
        for arrays in (ev, oof):
            np.testing.assert_allclose(arrays["class18"].sum(1), 1, atol=1e-5)
            assert arrays["embeddings"].shape[0] == len(arrays["rows"])


def test_probabilities_are_the_models_own_averaged_over_the_views(root):
    """Recomputed by hand from the saved model: softmax of the plain and the mirrored input, averaged."""
    paths = Paths(root)
    params = prf.make_params()
    predict.run(params, "multihead", 0, root)
    saved = artifacts.fold_predictions(paths, "multihead", 0, "eval")
    net = load_trained(paths.model_dir("multihead", 0))
    images = artifacts.open_cache(paths.cache_dir, "eval")
    x = torch.from_numpy(np.array(images[:8])).permute(0, 3, 1, 2)
    views = []
    with torch.no_grad():
        for view in params.predict.tta:
            logits = predict_logits(net, [VIEWS[view](x)], CPU, net.data_config)
            views.append(net.probabilities(logits)["class18"].numpy())
    np.testing.assert_allclose(saved["class18"][:8], np.mean(views, axis=0), atol=1e-5)
    assert "hflip" in params.predict.tta and not np.allclose(views[0], views[1])  # the views differ


def test_one_view_and_no_embeddings_when_asked():
    calls = []

    class Tiny(torch.nn.Module):
        data_config = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}

        def forward(self, x):
            calls.append(x.clone())
            return {"mask": x.mean((2, 3))}

        def probabilities(self, out):
            return {"mask": torch.softmax(out["mask"], 1)}

    net = Tiny()
    batch = torch.randint(0, 255, (2, 3, 4, 4), dtype=torch.uint8)
    out = predict_probabilities(net, [batch], CPU, net.data_config, ["none"], embeddings=False)
    assert set(out) == {"mask"} and len(calls) == 1
    predict_probabilities(net, [batch], CPU, net.data_config, ["none", "hflip"], embeddings=False)
    torch.testing.assert_close(calls[2], torch.flip(calls[1], dims=[3]))  # the second view is the mirror
