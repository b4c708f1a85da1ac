import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from maskcls import layout, metrics


def random_probs(rng, n, k):
    p = rng.random((n, k))
    return p / p.sum(1, keepdims=True)


@pytest.mark.parametrize("trial", range(20))
def test_macro_f1_is_sklearns_default_call_even_with_absent_classes(trial):
    """The headline equals f1_score(average="macro") with sklearn's default labels, on sets where some of the
    18 classes are absent from truth, from predictions, or from both."""
    rng = np.random.default_rng(trial)
    present = rng.choice(18, size=rng.integers(2, 12), replace=False)
    y_true = rng.choice(present, 200)
    y_pred = np.where(rng.random(200) < 0.5, y_true, rng.integers(0, 18, 200))
    assert metrics.macro_f1(y_true, y_pred) == f1_score(y_true, y_pred, average="macro")


def test_macro_f1_ignores_classes_absent_from_both_sides():
    assert metrics.macro_f1([0, 1, 0, 1], [0, 1, 0, 1]) == 1.0
    assert metrics.macro_f1([0, 0], [1, 1]) == 0.0


def test_the_all_labels_variant_is_separate_and_counts_absent_classes_as_zero():
    assert metrics.macro_f1_all_labels([0, 1, 0, 1], [0, 1, 0, 1], 3) == pytest.approx(2 / 3)
    y_true, y_pred = [0, 1, 2, 2], [0, 1, 1, 2]
    expected = f1_score(y_true, y_pred, labels=range(18), average="macro", zero_division=0)
    assert metrics.macro_f1_all_labels(y_true, y_pred, 18) == pytest.approx(expected)


def test_accuracy():
    assert metrics.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    assert metrics.accuracy([], []) == 0.0
    with pytest.raises(ValueError, match="labels but"):
        metrics.accuracy([0, 1], [0])


def test_task_scores_match_sklearn_on_a_fixed_set(rng):
    n = 300
    classes = rng.integers(0, 18, n)
    mask, gender, age = layout.decode(classes)
    truth = {"mask": mask, "gender": gender, "age": age, "class18": classes}
    probs = {key: random_probs(rng, n, layout.NUM_LABELS[key]) for key in metrics.KEYS}
    scores = metrics.task_scores(truth, probs)
    assert list(scores) == list(metrics.KEYS)
    for key in metrics.KEYS:
        pred = probs[key].argmax(1)
        assert scores[key]["f1"] == f1_score(truth[key], pred, average="macro")
        assert scores[key]["accuracy"] == pytest.approx(accuracy_score(truth[key], pred))


def test_task_scores_are_not_a_mean_of_batch_scores(rng):
    """The whole-set score differs from the per-batch average a careless loop would report."""
    n = 256
    y = rng.integers(0, 3, n)
    probs = random_probs(rng, n, 3)
    whole = metrics.task_scores({"mask": y}, {"mask": probs})["mask"]["f1"]
    batches = [
        metrics.task_scores({"mask": y[i : i + 16]}, {"mask": probs[i : i + 16]})["mask"]["f1"] for i in range(0, n, 16)
    ]
    assert whole == pytest.approx(f1_score(y, probs.argmax(1), average="macro"))
    assert abs(whole - np.mean(batches)) > 1e-6


def test_task_scores_only_score_outputs_present_in_both(rng):
    truth = {"mask": rng.integers(0, 3, 20), "age": rng.integers(0, 3, 20)}
    probs = {"mask": random_probs(rng, 20, 3), "gender": random_probs(rng, 20, 2)}
    assert list(metrics.task_scores(truth, probs)) == ["mask"]


def test_truth_arrays_renames_class():
    frame = pd.DataFrame({"row": [0, 1], "mask": [2, 0], "gender": [1, 0], "age": [2, 1], "class": [17, 1]})
    arrays = metrics.truth_arrays(frame)
    assert set(arrays) == {"mask", "gender", "age", "class18"}
    assert arrays["class18"].tolist() == [17, 1]
    assert arrays["class18"].tolist() == layout.encode(arrays["mask"], arrays["gender"], arrays["age"]).tolist()
