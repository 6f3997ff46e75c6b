import math

import numpy as np
import pytest
import torch

from sklearn_sed.training.losses import (
    KIND_PSEUDO,
    KIND_STRONG,
    KIND_WEAK,
    PseudoLabelLoss,
    bce,
    paper_class_weights,
    stage1_loss,
    stage2_loss,
    weighted_bce,
)


def test_paper_class_weights_match_eq2_by_hand():
    """Check that eq. 2 gives exp(1/N_c) / sum exp(1/N_c')."""
    n = [1, 2, 4]
    e = [math.exp(1), math.exp(0.5), math.exp(0.25)]
    expected = [v / sum(e) for v in e]
    np.testing.assert_allclose(paper_class_weights(n), expected)


def test_paper_class_weights_warn_on_absent_class():
    """Check that a class with no clip warns and is counted once."""
    with pytest.warns(UserWarning, match="never occur"):
        w = paper_class_weights([0, 1])
    np.testing.assert_allclose(w, [0.5, 0.5])


def test_bce_is_standard_bce_not_eq3_as_printed():
    """Check eq. 3 with its sign fixed: E = -(y log p + (1-y) log(1-p))."""
    y = torch.tensor([1.0, 0.0, 1.0, 0.0])
    p = torch.tensor([0.9, 0.9, 0.2, 0.2])
    expected = [-math.log(0.9), -math.log(0.1), -math.log(0.2), -math.log(0.8)]
    np.testing.assert_allclose(bce(y, p).numpy(), expected, rtol=1e-6)
    # The printed eq. 3 would give a negative loss for (y=0, p=0.9):
    assert bce(y, p)[1] > 0


def test_weighted_bce_matches_eq1_by_hand():
    """Check eq. 1: sum over classes of w_c E, divided by the sample count."""
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.8, 0.3], [0.4, 0.6]])
    w = torch.tensor([0.25, 0.75])
    E = [
        [-math.log(0.8), -math.log(0.7)],
        [-math.log(0.6), -math.log(0.6)],
    ]
    expected = (0.25 * E[0][0] + 0.75 * E[0][1] + 0.25 * E[1][0] + 0.75 * E[1][1]) / 2
    assert weighted_bce(y, p, w).item() == pytest.approx(expected, rel=1e-6)


def test_weighted_bce_counts_frames_as_samples():
    """Check that frame losses divide by clips x frames (N_all)."""
    y = torch.ones(2, 3, 1)
    p = torch.full((2, 3, 1), 0.5)
    assert weighted_bce(y, p, torch.ones(1)).item() == pytest.approx(math.log(2))


def test_weighted_bce_of_empty_subset_is_zero():
    """Check that a batch without samples of a kind adds nothing."""
    out = weighted_bce(torch.zeros(0, 2), torch.zeros(0, 2), torch.ones(2))
    assert out.item() == 0.0


def test_stage1_loss_matches_eqs_6_to_8():
    """Check eqs. 6-8 against a hand computation."""
    Lwv, Lsv, Lsm, Mw, Ms = 0.3, 0.5, 0.7, 30, 10
    expected = (30 / 40 * 0.3 + 10 / 40 * 0.5) + 40 / 10 * 0.7
    assert stage1_loss(Lwv, Lsv, Lsm, n_weak=Mw, n_strong=Ms) == pytest.approx(expected)


def test_stage2_loss_matches_eqs_9_10():
    """Check eqs. 9-10 against a hand computation."""
    Lwv, Lsv, Lsm, Lpm, Mw, Ms, Mp = 0.3, 0.5, 0.7, 0.9, 30, 10, 20
    Lv = 30 / 40 * 0.3 + 10 / 40 * 0.5
    Lm = 40 * 10 / 30**2 * 0.7 + 40 * 20 / 30**2 * 0.9
    got = stage2_loss(Lwv, Lsv, Lsm, Lpm, n_weak=Mw, n_strong=Ms, n_pseudo=Mp)
    assert got == pytest.approx(Lv + Lm)


def test_stage2_keep_strong_keeps_eq8_strong_weight_and_adds_pseudo_term():
    """Check weighting="keep_strong" by hand: eq. 8's strong term plus eq. 10's
    pseudo term."""
    Lwv, Lsv, Lsm, Lpm, Mw, Ms, Mp = 0.3, 0.5, 0.7, 0.9, 30, 10, 20
    Lv = 30 / 40 * 0.3 + 10 / 40 * 0.5
    Lm = 40 / 10 * 0.7 + 40 * 20 / 30**2 * 0.9
    got = stage2_loss(
        Lwv, Lsv, Lsm, Lpm, n_weak=Mw, n_strong=Ms, n_pseudo=Mp, weighting="keep_strong"
    )
    assert got == pytest.approx(Lv + Lm)
    paper = stage2_loss(Lwv, Lsv, Lsm, Lpm, n_weak=Mw, n_strong=Ms, n_pseudo=Mp)
    assert got > paper  # the strong frames weigh more than in eq. 10
    s1 = stage1_loss(Lwv, Lsv, Lsm, n_weak=Mw, n_strong=Ms)
    s2 = stage2_loss(
        Lwv, Lsv, Lsm, Lpm, n_weak=Mw, n_strong=Ms, n_pseudo=0, weighting="keep_strong"
    )
    assert s2 == pytest.approx(s1)


def test_stage2_loss_refuses_an_unknown_weighting():
    with pytest.raises(ValueError, match="weighting must be one of"):
        stage2_loss(0.1, 0.1, 0.1, 0.1, n_weak=1, n_strong=1, n_pseudo=1, weighting="x")


def test_stage2_loss_without_pseudo_labels_equals_stage1():
    """Check that eq. 10 reduces to eq. 8 when M_p = 0."""
    args = (0.3, 0.5, 0.7)
    s1 = stage1_loss(*args, n_weak=30, n_strong=10)
    s2 = stage2_loss(*args, 0.9, n_weak=30, n_strong=10, n_pseudo=0)
    assert s1 == pytest.approx(s2)


def test_pseudo_label_loss_routes_clips_by_kind():
    """Check the criterion splits the batch into the four partial losses."""
    w = np.array([0.5, 0.5])
    crit = PseudoLabelLoss(w, n_weak=2, n_strong=1, n_pseudo=1, stage=2)
    frames = torch.tensor(
        [[[0.9, 0.1]], [[0.6, 0.2]], [[0.3, 0.7]]], dtype=torch.float32
    )
    clips = frames.amax(1)
    y = {
        "weak": torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
        "frames": torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]], [[0.0, 0.0]]]),
        "kind": torch.tensor([KIND_STRONG, KIND_PSEUDO, KIND_WEAK]),
    }
    Lwv, Lsv, Lsm, Lpm = crit.partial_losses((frames, clips), y)
    tw = torch.tensor(w, dtype=torch.float32)
    assert Lsv.item() == pytest.approx(
        weighted_bce(y["weak"][:1], clips[:1], tw).item()
    )
    assert Lwv.item() == pytest.approx(
        weighted_bce(y["weak"][1:], clips[1:], tw).item()
    )
    assert Lsm.item() == pytest.approx(
        weighted_bce(y["frames"][:1], frames[:1], tw).item()
    )
    assert Lpm.item() == pytest.approx(
        weighted_bce(y["frames"][1:2], frames[1:2], tw).item()
    )
    total = crit((frames, clips), y)
    expected = stage2_loss(Lwv, Lsv, Lsm, Lpm, n_weak=2, n_strong=1, n_pseudo=1)
    assert total.item() == pytest.approx(expected.item())
    crit.weighting = "keep_strong"
    expected_keep = stage2_loss(
        Lwv, Lsv, Lsm, Lpm, n_weak=2, n_strong=1, n_pseudo=1, weighting="keep_strong"
    )
    assert crit((frames, clips), y).item() == pytest.approx(expected_keep.item())
    crit.stage = 1
    expected1 = stage1_loss(Lwv, Lsv, Lsm, n_weak=2, n_strong=1)
    assert crit((frames, clips), y).item() == pytest.approx(expected1.item())


def test_weighted_bce_leaves_unknown_targets_out():
    """Check that a NaN target adds nothing and gives no gradient, N_all kept."""
    y = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    p = torch.tensor([[0.8, 0.3], [0.4, 0.6]], requires_grad=True)
    w = torch.tensor([0.25, 0.75])
    expected = 0.25 * -math.log(0.8) + 0.25 * -math.log(0.6) + 0.75 * -math.log(0.6)
    loss = weighted_bce(y, p, w)
    assert loss.item() == pytest.approx(expected / 2, rel=1e-6)
    loss.backward()
    assert torch.isfinite(p.grad).all()
    assert p.grad[0, 1].item() == 0.0
