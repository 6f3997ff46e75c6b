"""``benchmarks/reproduce_table1.py``: its settings (no data), and one tiny
training that checks ``--share-stage1`` against separate fits."""

import os
import sys

import numpy as np
import pytest

from sklearn_sed.datasets import DESED_CLASSES
from sklearn_sed.networks.crnn import CRNN

sys.path.insert(
    0,
    os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"
    ),
)
import reproduce_table1 as rt


def _args(*argv):
    return rt.build_parser().parse_args(["--compile", "off", *argv])


def test_crnn_teacher_is_the_crnn_variant_of_the_same_seed():
    """Check ``--teacher crnn`` gives the ResNet + PL variant a teacher with
    the CRNN row's settings (same seed, no stage 2), and none by default."""
    args = _args("--teacher", "crnn")
    student = rt.make_variant("resnet_pl", 3, args)
    crnn = rt.make_variant("crnn", 3, args)
    assert student.pseudo_label
    assert student.teacher.get_params()["module"].func is CRNN
    teacher, alone = student.teacher.get_params(), crnn.get_params()
    for params in (teacher, alone):
        params.pop("module")  # two equal partials, not one object
    assert teacher == alone
    assert rt.make_variant("resnet_pl", 3, _args()).teacher is None
    assert rt.make_variant("resnet", 3, args).teacher is None


def test_runs_with_and_without_a_teacher_do_not_merge():
    """Check a run on record without a teacher refuses to merge with runs
    made with one (and its CRNN width then matters)."""
    parser = rt.build_parser()
    saved = {k: v for k, v in vars(_args()).items() if k not in ("docs", "data")}
    record = [{"variant": "resnet_pl", "seed": 0, "settings": saved}]
    now = _args("--teacher", "crnn", "--seeds", "1", "--variants", "resnet_pl")
    with pytest.raises(SystemExit, match="teacher"):
        rt.check_same_settings(record, now, parser)
    rt.check_same_settings(record, _args("--seeds", "1", "--crnn-filters", "8"), parser)
    saved_t = {**saved, "teacher": "crnn"}
    record_t = [{"variant": "resnet_pl", "seed": 0, "settings": saved_t}]
    with pytest.raises(SystemExit, match="crnn_filters"):
        rt.check_same_settings(
            record_t,
            _args("--teacher", "crnn", "--crnn-filters", "8", "--seeds", "1"),
            parser,
        )


def test_runs_from_before_filter_augment_count_as_without_it():
    """Check a run on record without a ``filter_augment`` setting (made before
    the option existed, so without it) refuses to merge with the recipe's
    default runs and merges with ``--filter-augment 0``."""
    parser = rt.build_parser()
    saved = {k: v for k, v in vars(_args()).items() if k not in ("docs", "data")}
    assert saved.pop("filter_augment") == rt.RECIPES["cpu"]["filter_augment"] > 0
    record = [{"variant": "resnet", "seed": 0, "settings": saved}]
    with pytest.raises(SystemExit, match="filter_augment"):
        rt.check_same_settings(record, _args("--seeds", "1"), parser)
    rt.check_same_settings(
        record, _args("--seeds", "1", "--filter-augment", "0"), parser
    )


def _random_split(n_strong=20, n_weak=10, n_valid=4):
    """A split of ``reproduce_table1.extract``'s shape: random feature maps
    of 10-s clips and random events of the DESED classes."""
    rng = np.random.RandomState(0)

    def events():
        out = []
        for _ in range(rng.randint(1, 3)):
            onset = round(float(rng.uniform(0, 8)), 2)
            label = DESED_CLASSES[rng.randint(len(DESED_CLASSES))]
            out.append((onset, round(onset + float(rng.uniform(0.5, 2)), 2), label))
        return out

    strong = [events() for _ in range(n_strong)]
    weak = [sorted({e[2] for e in events()}) for _ in range(n_weak)]
    n = n_strong + n_weak
    return {
        "train": (
            rng.rand(n, 1024, 64).astype(np.float32),
            [sorted({e[2] for e in s}) for s in strong] + weak,
            strong + [None] * n_weak,
        ),
        "valid": (
            rng.rand(n_valid, 1024, 64).astype(np.float32),
            [events() for _ in range(n_valid)],
        ),
        "weak_truth": [None] * n,
    }


def test_shared_stage1_continues_each_variant_as_its_own_fit(tmp_path):
    """Check ``--share-stage1`` (stage 1 trained once per seed, the other
    variant continued from its snapshot) gives the probabilities that the
    variants' own fits give, to the last bit, in both orders, with the
    restarted schedule; and that the continued fit did not train stage 1
    again (its stage-1 epochs are the snapshot's, durations included)."""
    common = (
        *("--n-filters", "2", "--n-blocks", "1", "--epochs", "4", "--max-iter", "2"),
        *("--batch-size", "8", "--train-dtype", "float32", "--filter-augment", "0"),
        *("--lr-restart-epoch", "2", "--data", str(tmp_path), "--save-frames"),
    )
    split = _random_split()

    def frames(tag, variant):
        with np.load(tmp_path / f"frames-{tag}-{variant}-s0.npz") as f:
            return f["valid_frames"], f["dev_frames"]

    variants = ("resnet", "resnet_pl")
    alone = {
        v: rt.run_one(v, 0, split, _args(*common, "--tag", "alone")) for v in variants
    }
    for order in (variants, variants[::-1]):
        tag = "-".join(order)
        stage1_dir = tmp_path / tag
        stage1_dir.mkdir()
        first, then = (
            rt.run_one(v, 0, split, _args(*common, "--tag", tag), str(stage1_dir))
            for v in order
        )
        assert (stage1_dir / "stage1.pt").exists()
        assert not first["stage1_shared"]
        assert then["stage1_shared"]
        assert then["epoch_seconds"][:2] == first["epoch_seconds"][:2]
        assert then["epoch_seconds"][2:] != first["epoch_seconds"][2:]
        for v, r in zip(order, (first, then), strict=True):
            assert r["stage_per_epoch"] == alone[v]["stage_per_epoch"]
            assert r["dev_event_f1_per_epoch"] == alone[v]["dev_event_f1_per_epoch"]
            for got, want in zip(frames(tag, v), frames("alone", v), strict=True):
                assert got.std() > 0
                np.testing.assert_array_equal(got, want)
    # The two variants part after stage 1 (stage 2 only in the PL run).
    assert alone["resnet_pl"]["stage_per_epoch"][2:] == [2, 2]
    assert alone["resnet"]["stage_per_epoch"][2:] == [1, 1]


def test_kept_stage1_snapshots_refuse_other_stage1_settings(tmp_path):
    """Check ``--stage1-dir`` keeps one folder per seed that later runs
    share when only stage 2 differs (pseudo-label settings), and refuses
    settings that change stage 1 (the rate, where stage 1 ends)."""
    kept = ("--share-stage1", "--stage1-dir", str(tmp_path))
    folder = rt._stage1_folder(_args(*kept), 3)
    assert folder == str(tmp_path / "s3")
    assert (tmp_path / "s3" / "settings.json").exists()
    stage2 = _args(*kept, "--stage2-weighting", "keep_strong", "--delta", "0.05")
    assert rt._stage1_folder(stage2, 3) == folder
    restart = ("--lr-restart-epoch", "10", "--stage1-dir", str(tmp_path / "r"))
    folder = rt._stage1_folder(_args("--share-stage1", *restart), 0)
    higher = _args("--share-stage1", *restart, "--lr-restart-scale", "1.0")
    assert rt._stage1_folder(higher, 0) == folder  # stage 2's rate only
    for other in (("--lr", "0.001"), ("--max-iter", "6"), ("--lr-restart-epoch", "8")):
        with pytest.raises(SystemExit, match="other settings"):
            rt._stage1_folder(_args(*kept, *other), 3)
    assert rt._stage1_folder(_args(*kept, "--lr", "0.001"), 4) == str(tmp_path / "s4")
