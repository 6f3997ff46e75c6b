import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sklearn_sed import Augment, PseudoLabelSchedule, PseudoLabelSED
from tests.conftest import FAST_SED

# FAST_SED with two stage-1 epochs, three pseudo-label iterations and the
# augmentation on, so that a checkpoint has RNG and pseudo-label state to carry.
PARAMS = dict(
    FAST_SED,
    max_epochs=2,
    pseudo_labels=PseudoLabelSchedule(max_iter=3),
    batch_size=8,
    augment=Augment(time_shift=0.2, freq_mask=2),
)


@pytest.fixture(scope="module")
def data(tiny_dataset, tmp_path_factory):
    d = tiny_dataset
    root = tmp_path_factory.mktemp("ckpt-data")
    np.save(root / "F.npy", d["F"][:16])
    (root / "labels.json").write_text(
        json.dumps({"y_weak": d["y_weak"][:16], "y_strong": d["y_strong"][:16]})
    )
    return root


def _labels(root):
    labels = json.loads((root / "labels.json").read_text())
    y_strong = [
        None if s is None else [tuple(e) for e in s] for s in labels["y_strong"]
    ]
    return labels["y_weak"], y_strong


@pytest.mark.slow  # subprocess; runs in CI (make test)
def test_sigkill_in_stage_two_then_resume_gives_same_predictions(data, tmp_path):
    """Check a fit killed with SIGKILL in stage 2 resumes from its checkpoint and
    ends with the same predictions as an uninterrupted fit."""
    ckpt = tmp_path / "ckpt"
    script = textwrap.dedent(f"""
        import json, os, signal
        import numpy as np
        from skorch.callbacks import Callback
        from sklearn_sed import Augment, PseudoLabelSED, PseudoLabelSchedule

        class KillInStageTwo(Callback):
            def on_epoch_end(self, net, **kwargs):
                if net.history[:, "stage"].count(2) == 2:  # 2nd stage-2 epoch
                    os.kill(os.getpid(), signal.SIGKILL)

        F = np.load({str(data / "F.npy")!r})
        labels = json.load(open({str(data / "labels.json")!r}))
        y_strong = [None if s is None else [tuple(e) for e in s]
                    for s in labels["y_strong"]]
        PseudoLabelSED(**{PARAMS!r}, checkpoint_dir={str(ckpt)!r},
                       callbacks=[KillInStageTwo()]).fit(F, labels["y_weak"], y_strong)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        check=False,
        cwd=os.getcwd(),
    )
    assert proc.returncode == -9, proc.stderr.decode()[-3000:]
    import torch

    state = torch.load(ckpt / "checkpoint.pt", weights_only=True)
    assert state["epochs_done"] == 3  # 2 stage-1 epochs + 1 stage-2 epoch saved
    assert state["criterion"]["stage"] == 2

    F = np.load(data / "F.npy")
    y_weak, y_strong = _labels(data)
    resumed = PseudoLabelSED(**PARAMS, checkpoint_dir=str(ckpt)).fit(
        F, y_weak, y_strong
    )
    straight = PseudoLabelSED(**PARAMS).fit(F, y_weak, y_strong)
    np.testing.assert_array_equal(resumed.predict_frames(F), straight.predict_frames(F))
    assert resumed.pseudo_label_history_ == straight.pseudo_label_history_
    assert len(resumed.net_.history) == len(straight.net_.history) == 5


def test_checkpoint_from_other_training_is_refused(data, tmp_path):
    """Check a checkpoint of a different training is not silently reused."""
    F = np.load(data / "F.npy")
    y_weak, y_strong = _labels(data)
    ckpt = str(tmp_path / "ckpt")
    PseudoLabelSED(
        **{**PARAMS, "pseudo_labels": PseudoLabelSchedule(max_iter=0)},
        checkpoint_dir=ckpt,
    ).fit(F, y_weak, y_strong)
    with pytest.raises(ValueError, match="belongs to a training with other"):
        PseudoLabelSED(**{**PARAMS, "lr": 0.5}, checkpoint_dir=ckpt).fit(
            F, y_weak, y_strong
        )


def test_checkpoint_of_changed_clip_is_refused_wherever_the_change(data, tmp_path):
    """Check the fingerprint hashes every clip: a change in any one clip (not
    only the clips a sample would hit) refuses the old checkpoint."""
    from sklearn_sed.training.build import hash_rows

    F = np.load(data / "F.npy")
    for k in range(len(F)):
        changed = F.copy()
        changed[k, 7, 3] += 1e-3
        assert hash_rows(changed) != hash_rows(F), k
    y_weak, y_strong = _labels(data)
    ckpt = str(tmp_path / "ckpt")
    params = {
        **PARAMS,
        "pseudo_labels": PseudoLabelSchedule(max_iter=0),
        "max_epochs": 1,
        "checkpoint_dir": ckpt,
    }
    PseudoLabelSED(**params).fit(F, y_weak, y_strong)
    changed = F.copy()
    changed[5, 100, 10] += 1e-3
    with pytest.raises(ValueError, match="belongs to a training with other"):
        PseudoLabelSED(**params).fit(changed, y_weak, y_strong)


def test_corrupted_checkpoint_message(data, tmp_path):
    """Check an unreadable checkpoint is reported with the remedy."""
    F = np.load(data / "F.npy")
    y_weak, y_strong = _labels(data)
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="Consider deleting it"):
        PseudoLabelSED(**PARAMS, checkpoint_dir=str(tmp_path)).fit(F, y_weak, y_strong)


def test_same_seed_bit_identical_across_runs_and_extraction_jobs(tiny_dataset):
    """Check one random_state gives bit-identical predictions across runs, with
    features extracted with n_jobs=1 or n_jobs=2."""
    from sklearn_sed import LogMelExtractor
    from tests.conftest import TINY_FEATURES

    d = tiny_dataset
    F1 = LogMelExtractor(**TINY_FEATURES, n_jobs=1).fit_transform(d["audio"][:16])
    F2 = LogMelExtractor(**TINY_FEATURES, n_jobs=2).fit_transform(d["audio"][:16])
    a = PseudoLabelSED(**PARAMS).fit(F1, d["y_weak"][:16], d["y_strong"][:16])
    b = PseudoLabelSED(**PARAMS).fit(F2, d["y_weak"][:16], d["y_strong"][:16])
    np.testing.assert_array_equal(a.predict_frames(F1), b.predict_frames(F2))


def test_weight_copies_ignore_a_data_parallel_wrapper(tmp_path):
    """Model files, checkpoints and the best epoch share nets.module_state:
    a DistributedDataParallel wrapper's ``module.`` prefix never reaches a
    copy, and a copy loads into a wrapped or a bare network alike."""
    import torch.distributed as dist

    from sklearn_sed.networks.resnet import ResNetSED
    from sklearn_sed.training.net import load_module_state, module_state

    bare = ResNetSED(2, n_filters=2, n_blocks=1)
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1
    )
    try:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            ResNetSED(2, n_filters=2, n_blocks=1)
        )
        state = module_state(wrapped)
        assert not any(k.startswith("module.") for k in state)
        assert set(state) == set(bare.state_dict())
        assert all(v.device.type == "cpu" for v in state.values())
        load_module_state(bare, state)
        load_module_state(wrapped, module_state(bare))
        for k, v in module_state(bare).items():
            torch.testing.assert_close(v, state[k])
    finally:
        dist.destroy_process_group()


@pytest.fixture
def finished_checkpoint(data, tmp_path):
    """A checkpoint folder of a finished two-stage fit, and its fit()."""
    F = np.load(data / "F.npy")
    y_weak, y_strong = _labels(data)
    ckpt = tmp_path / "ckpt"

    def fit():
        return PseudoLabelSED(**PARAMS, checkpoint_dir=str(ckpt)).fit(
            F, y_weak, y_strong
        )

    fit()
    return ckpt / "checkpoint.pt", fit


def test_a_flipped_bit_in_the_checkpoint_is_refused(finished_checkpoint):
    """Check one flipped bit in a tensor's stored bytes is a ValueError
    naming the file, never a silent resume with other predictions."""
    import zipfile

    path, fit = finished_checkpoint
    with zipfile.ZipFile(path) as zf:
        tensors = [i for i in zf.infolist() if "/data/" in i.filename]
        info = max(tensors, key=lambda i: i.file_size)  # the largest tensor
    data = bytearray(path.read_bytes())
    # The member's bytes follow its local header (30 bytes, name, extra).
    name_len = int.from_bytes(
        data[info.header_offset + 26 : info.header_offset + 28], "little"
    )
    extra_len = int.from_bytes(
        data[info.header_offset + 28 : info.header_offset + 30], "little"
    )
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"checkpoint\.pt.*(damaged|cannot be read)"):
        fit()


def _altered(path, change):
    """Change a checkpoint's fields, with a matching integrity hash (as a
    writer who knows the format could)."""
    from sklearn_sed.training.checkpoints import _digest

    state = torch.load(path, weights_only=True)
    change(state)
    state["digest"] = _digest(state)
    torch.save(state, path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda s: s.update(
                frames=s["frames"].reshape(1, -1, s["frames"].shape[-1])
            ),
            "frames has shape",
        ),
        (lambda s: s["frames"].fill_(float("nan")), r"outside \[0, 1\]"),
        (lambda s: s.update(epochs_done=-5), "epochs_done=-5"),
        (lambda s: s.update(epochs_done=10**6), "epochs_done=1000000"),
        (lambda s: next(iter(s["module"].values())).fill_(float("nan")), "non-finite"),
        (lambda s: s.pop("criterion"), r"lacks \['criterion'\]"),
        (lambda s: s.update(callbacks=7), "damaged or was altered: callbacks"),
        (
            lambda s: s.update(callbacks={"best_weights": 7}),
            "damaged or was altered: callbacks",
        ),
    ],
    ids=[
        "frames-spread",
        "nan-frames",
        "negative-epochs",
        "too-many-epochs",
        "nan-weights",
        "missing-key",
        "callbacks-int",
        "callback-state-int",
    ],
)
def test_altered_checkpoint_fields_are_refused(finished_checkpoint, change, match):
    path, fit = finished_checkpoint
    _altered(path, change)
    with pytest.raises(ValueError, match=match):
        fit()


def test_a_seed_record_that_is_a_folder_is_refused_as_damaged(tmp_path):
    from sklearn_sed.training.checkpoints import SEED_NAME, training_seed

    (tmp_path / SEED_NAME).mkdir()
    with pytest.raises(ValueError, match=r"damaged or was altered.*Delete it"):
        training_seed(str(tmp_path))


def test_a_checkpoint_without_integrity_hash_is_refused(finished_checkpoint):
    path, fit = finished_checkpoint
    state = torch.load(path, weights_only=True)
    del state["digest"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="no integrity hash"):
        fit()


def test_an_intact_checkpoint_still_resumes(finished_checkpoint):
    path, fit = finished_checkpoint
    before = path.read_bytes()
    fit()  # resumes: nothing left to train, the file is as it was
    assert path.read_bytes() == before


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    field=st.sampled_from(["epochs_done", "criterion", "kind", "frames"]),
    value=st.one_of(
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=True, allow_infinity=True),
        st.none(),
        st.text(max_size=5),
    ),
)
def test_fuzzed_checkpoint_fields_resume_only_when_valid(
    finished_checkpoint, field, value
):
    """Fuzz a checkpoint's fields (with a matching integrity hash): a resume
    either happens with a valid value or is a ValueError naming the file;
    never another exception, never a silent resume on a damaged field."""
    path, fit = finished_checkpoint
    original = path.read_bytes()
    state = torch.load(path, weights_only=True)
    if field in ("kind", "frames") and isinstance(value, (int, float)):
        if np.isfinite(value):
            try:
                value = torch.full_like(state[field], value)
            except RuntimeError:  # beyond int64: no such tensor to write
                assume(False)
    if field == "criterion":
        value = {**state["criterion"], "stage": value}
    _altered(path, lambda s: s.update({field: value}))
    try:
        fit()
    except ValueError as exc:
        assert "checkpoint.pt" in str(exc)  # noqa: PT017
    else:
        # Resumed: only a value as valid as the original can get here.
        if field == "epochs_done":
            assert isinstance(value, int)
            assert 0 <= value
    finally:
        path.write_bytes(original)
