"""The settings of ``benchmarks/reproduce_table1.py`` (no training, no data)."""

import os
import sys

import pytest

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
