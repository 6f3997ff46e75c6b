"""Pretrained embeddings: PANNs' Cnn14 equal to the published module, loaded safely.

No weight is downloaded: the reference ``Cnn14`` of ``panns-inference``
(a test dependency) is built with random weights and saved in the official
layout (``{"iteration": ..., "model": state_dict}``), and the library must
load that file and give the reference module's intermediate output.
"""

import functools
import importlib.util
import os
import pickle
import sys
import types

import joblib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sklearn_sed
from sklearn_sed import (
    FusedFeatures,
    LogMelExtractor,
    PretrainedEmbedding,
    PseudoLabelSED,
)
from sklearn_sed.audio.store import extract_to_store, open_store
from sklearn_sed.embeddings.beats import BEATS_CONFIG, BEATsEmbedding, kaldi_fbank
from sklearn_sed.embeddings.checkpoints import CheckpointError, read_checkpoint
from sklearn_sed.embeddings.fusion import fold_embeddings
from sklearn_sed.embeddings.panns import PANNS_MODELS, Cnn14Embedding
from sklearn_sed.networks import EmbeddingCRNN, check_module_output
from sklearn_sed.networks.registry import network_factory, network_name
from sklearn_sed.pipeline import Pipeline
from sklearn_sed.training.augment import SEDAugment

FMAX = {"panns-cnn14": 14000, "panns-cnn14-16k": 8000}


def _reference_models():
    """``panns_inference.models`` without its ``__init__``.

    The package's ``__init__`` imports its ``config``, which downloads a
    label list at import time; the model module needs none of it.
    """
    spec = importlib.util.find_spec("panns_inference")
    if spec is None:  # a test dependency: `pip install -e ".[test]"`
        raise ImportError("panns-inference is a test dependency; install .[test]")
    saved = sys.modules.get("panns_inference")
    package = types.ModuleType("panns_inference")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["panns_inference"] = package
    try:
        spec = importlib.util.find_spec("panns_inference.models")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        if saved is None:
            sys.modules.pop("panns_inference", None)
            sys.modules.pop("panns_inference.pytorch_utils", None)
        else:
            sys.modules["panns_inference"] = saved


def _reference_cnn14(model, seed=0):
    """The published Cnn14 with random weights and random batch-norm statistics."""
    torch.manual_seed(seed)
    spec = PANNS_MODELS[model]
    ref = _reference_models().Cnn14(
        sample_rate=spec["sample_rate"],
        window_size=spec["window_size"],
        hop_size=spec["hop_size"],
        mel_bins=64,
        fmin=50,
        fmax=FMAX[model],
        classes_num=527,
    )
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # not the identity of init
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return ref.eval()


def _reference_embeddings(ref, waveforms):
    """``conv_block6``'s output averaged over frequency, read by a hook."""
    out = {}
    hook = ref.conv_block6.register_forward_hook(lambda m, i, o: out.update(x=o))
    try:
        with torch.no_grad():
            ref(torch.as_tensor(waveforms))
    finally:
        hook.remove()
    return out["x"].mean(dim=3).transpose(1, 2).numpy()


@pytest.fixture(scope="module")
def reference_16k():
    return _reference_cnn14("panns-cnn14-16k")


@pytest.fixture(scope="module")
def other_checkpoint_16k(checkpoint_16k, tmp_path_factory):
    """The same network with one weight changed: another SHA-256."""
    obj = torch.load(checkpoint_16k, weights_only=False)
    obj["model"]["fc1.bias"] = obj["model"]["fc1.bias"] + 1.0
    path = tmp_path_factory.mktemp("other") / "other.pth"
    torch.save(obj, path)
    return str(path)


@pytest.fixture(scope="module")
def checkpoint_16k(reference_16k, tmp_path_factory):
    """A Cnn14_16k checkpoint in the official layout (iteration as a numpy int)."""
    path = tmp_path_factory.mktemp("ckpt") / "Cnn14_16k_mAP=0.438.pth"
    torch.save(
        {"iteration": np.int64(600000), "model": reference_16k.state_dict()}, path
    )
    return str(path)


def _clips(n, seconds, sr, seed=0):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((n, round(seconds * sr)))).astype(np.float32)


# -- equal to the published network -------------------------------------------
@pytest.mark.parametrize("model", ["panns-cnn14", "panns-cnn14-16k"])
def test_cnn14_trunk_equals_the_reference_module_for_its_state_dict(model):
    ref = _reference_cnn14(model, seed=1)
    mine = Cnn14Embedding(**PANNS_MODELS[model])
    mine.load_state_dict(ref.state_dict(), strict=True)  # same keys, same layout
    mine.eval()
    x = _clips(2, 1.0, PANNS_MODELS[model]["sample_rate"])
    with torch.no_grad():
        got = mine(torch.as_tensor(x)).numpy()
    expected = _reference_embeddings(ref, x)
    assert got.shape == expected.shape == (2, 3, 2048)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_official_layout_checkpoint_loads_and_embeds_as_the_reference(
    reference_16k, checkpoint_16k
):
    X = _clips(3, 1.0, 16000, seed=2)
    emb = PretrainedEmbedding(checkpoint_16k, model="panns-cnn14-16k", n_frames=5)
    emb.set_params(duration=1.0)
    out = emb.fit(X).transform(X)
    ref = torch.as_tensor(_reference_embeddings(reference_16k, X))
    pooled = F.adaptive_avg_pool1d(ref.transpose(1, 2), 5).transpose(1, 2).numpy()
    assert out.shape == (3, 5, 2048)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, pooled, rtol=1e-5, atol=1e-5)
    assert len(emb.checkpoint_sha256_) == 64
    assert list(emb.get_feature_names_out()[:2]) == [
        "panns_cnn14_16k0",
        "panns_cnn14_16k1",
    ]


def test_waveforms_at_another_rate_are_resampled_to_the_model_rate(checkpoint_16k):
    X = _clips(2, 1.0, 16000, seed=3)
    emb = PretrainedEmbedding(
        checkpoint_16k, "panns-cnn14-16k", n_frames=4, duration=1.0
    )
    direct = emb.fit_transform(X)
    import librosa

    up = [librosa.resample(x, orig_sr=16000, target_sr=32000) for x in X]
    via_pairs = emb.transform([(u, 32000) for u in up])
    np.testing.assert_allclose(via_pairs, direct, atol=0.05 * np.abs(direct).max())


# -- checkpoints: safe and checked --------------------------------------------
class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_with_code_is_refused_by_name_and_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": _RunsCode()}, f)
    with pytest.raises(CheckpointError, match=r"system.*refused unread"):
        read_checkpoint(path)
    torch.save(
        {"model": {"w": torch.zeros(1)}, "hook": _RunsCode()}, tmp_path / "z.pth"
    )
    with pytest.raises(CheckpointError, match=r"system.*could run code"):
        read_checkpoint(tmp_path / "z.pth")
    assert not (tmp_path / "PWNED").exists()


def test_missing_empty_and_truncated_checkpoints_are_refused(tmp_path, checkpoint_16k):
    with pytest.raises(CheckpointError, match="does not exist"):
        PretrainedEmbedding(tmp_path / "nope.pth").fit()
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="0 bytes"):
        read_checkpoint(tmp_path / "empty.pth")
    data = open(checkpoint_16k, "rb").read()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        read_checkpoint(tmp_path / "cut.pth")
    assert open(checkpoint_16k, "rb").read() == data  # the original is untouched


def test_a_checkpoint_of_another_model_is_refused_naming_the_first_mismatch(
    checkpoint_16k, tmp_path
):
    with pytest.raises(
        CheckpointError,
        match=r"not a panns-cnn14 checkpoint: its 'spectrogram_extractor\.stft\."
        r"conv_real\.weight' is \[257, 1, 512\].*consider model='panns-cnn14-16k'",
    ):
        PretrainedEmbedding(checkpoint_16k, model="panns-cnn14").fit()
    resnet = sklearn_sed.ResNetSED(n_classes=3, n_filters=2, n_blocks=1)
    torch.save({"model": resnet.state_dict()}, tmp_path / "resnet.pth")
    with pytest.raises(
        CheckpointError, match=r"not a panns-cnn14-16k checkpoint: it has no"
    ):
        PretrainedEmbedding(tmp_path / "resnet.pth", "panns-cnn14-16k").fit()
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds a list"):
        read_checkpoint(tmp_path / "list.pth")


def test_audio_below_half_the_model_rate_is_refused(checkpoint_16k):
    emb = PretrainedEmbedding(checkpoint_16k, "panns-cnn14-16k", duration=1.0).fit()
    with pytest.raises(ValueError, match=r"X\[1\] is at 4000 Hz.*takes 16000 Hz"):
        emb.transform([(np.zeros(8000, np.float32), 8000), (np.zeros(4000), 4000)])


def test_clips_shorter_than_the_receptive_field_are_refused(checkpoint_16k):
    with pytest.raises(ValueError, match=r"shorter than the 4960 samples"):
        PretrainedEmbedding(checkpoint_16k, "panns-cnn14-16k", duration=0.2).fit()


def test_a_changed_checkpoint_is_refused_by_its_hash(
    checkpoint_16k, other_checkpoint_16k
):
    emb = PretrainedEmbedding(checkpoint_16k, "panns-cnn14-16k", duration=1.0).fit()
    with pytest.raises(CheckpointError, match=r"has SHA-256 .* was made with"):
        PretrainedEmbedding(
            other_checkpoint_16k,
            "panns-cnn14-16k",
            checkpoint_sha256=emb.checkpoint_sha256_,
        ).fit()


def test_joblib_keeps_the_hash_not_the_weights_and_checks_on_reload(
    checkpoint_16k, tmp_path
):
    X = _clips(1, 1.0, 16000)
    emb = PretrainedEmbedding(
        checkpoint_16k, "panns-cnn14-16k", n_frames=2, duration=1.0
    )
    expected = emb.fit_transform(X)
    joblib.dump(emb, tmp_path / "emb.joblib")
    assert os.path.getsize(tmp_path / "emb.joblib") < 100_000  # no 320 MB inside
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "emb.joblib").transform(X), expected
    )


# -- fusion and the network ------------------------------------------------------
def test_fold_embeddings_puts_each_embedding_frame_over_its_log_mel_rows():
    logmel = np.arange(2 * 16 * 3, dtype=np.float32).reshape(2, 16, 3)
    emb = np.random.default_rng(0).random((2, 4, 8), dtype=np.float32)
    fused = fold_embeddings(logmel, emb)  # fold 4: 2 values per row
    assert fused.shape == (2, 16, 5)
    np.testing.assert_array_equal(fused[..., :3], logmel)
    np.testing.assert_array_equal(fused[:, 4:8, 3:].reshape(2, 8), emb[:, 1])
    with pytest.raises(ValueError, match="divisor"):
        fold_embeddings(logmel, np.zeros((2, 3, 8)))


def test_embedding_crnn_reads_the_fused_layout_and_keeps_the_contract():
    net = EmbeddingCRNN(3, embed_dim=16, n_mels=8, n_filters=4, hidden_size=4)
    X = np.random.default_rng(0).random((2, 64, 8 + 2), dtype=np.float32)
    assert check_module_output(net, X, 3) == 8
    with pytest.raises(ValueError, match="not 8 frames of 16"):
        net(torch.rand(2, 64, 8 + 3))
    alone = EmbeddingCRNN(3, embed_dim=16, n_mels=0, n_filters=4, hidden_size=4)
    assert check_module_output(alone, np.zeros((2, 8, 16), np.float32), 3) == 8
    module = network_factory("embedding_crnn", embed_dim=16, n_mels=0)
    assert network_name(module) == "embedding_crnn"
    with pytest.raises(ValueError, match=r"n_mels must be an int in \[0, 1024\]"):
        network_factory("embedding_crnn", n_mels=-1)


def test_frequency_augmentation_leaves_the_embedding_columns_alone():
    X = np.ones((16, 6), np.float32)
    aug = SEDAugment(freq_mask=4, filter_augment=6.0, pooling=8, n_bands=4)
    torch.manual_seed(0)
    out, _ = aug([(X, {"frames": np.zeros((2, 1), np.float32)})] * 8)
    np.testing.assert_array_equal(out[..., 4:], 1.0)
    assert (out[..., :4] != 1.0).any()


# -- end to end: pipeline, store, model file, command line -----------------------
#: 64 log-mel frames per 1.008 s clip (1 + 16128 // 256): 8 per embedding frame.
LOGMEL = dict(
    sr=16000,
    duration=1.008,
    n_fft=512,
    win_length=400,
    hop_length=256,
    n_mels=16,
    fmax=8000,
)


def _fused(checkpoint):
    emb = PretrainedEmbedding(checkpoint, "panns-cnn14-16k", n_frames=8, duration=1.008)
    return FusedFeatures(emb, LogMelExtractor(**LOGMEL))


def _detector():
    return PseudoLabelSED(
        module=functools.partial(
            EmbeddingCRNN, embed_dim=2048, n_mels=16, n_filters=4, hidden_size=4
        ),
        duration=1.008,
        max_epochs=2,
        batch_size=4,
        pseudo_labels=None,
        random_state=0,
        augment=sklearn_sed.Augment(time_shift=0.2, freq_mask=2),
    )


@pytest.fixture(scope="module")
def soundscapes():
    from sklearn_sed.datasets import make_domestic_soundscapes

    return make_domestic_soundscapes(
        8, duration=1.0, sr=16000, n_classes=2, random_state=0
    )


@pytest.fixture(scope="module")
def fitted_pipeline(checkpoint_16k, soundscapes):
    X, y_weak, y_strong = soundscapes
    pipe = Pipeline([("features", _fused(checkpoint_16k)), ("sed", _detector())])
    return pipe.fit(X, y_weak, y_strong)


def test_fused_features_are_log_mel_then_folded_embeddings(checkpoint_16k, soundscapes):
    X = soundscapes[0][:3]
    fused = _fused(checkpoint_16k).fit(X)
    out = fused.transform(X)
    assert out.shape == (3, 64, 16 + 256) == (3, fused.n_frames_, fused.n_features_out_)
    np.testing.assert_array_equal(out[..., :16], fused.logmel_.transform(X))
    emb = fused.embedding_.transform([(x, 16000) for x in X])
    np.testing.assert_array_equal(out[..., 16:].reshape(3, 8, 2048), emb)
    assert fused.fold_ == 8
    assert len(fused.get_feature_names_out()) == 272


def test_a_pipeline_with_embeddings_fits_predicts_and_round_trips(
    fitted_pipeline, soundscapes, checkpoint_16k, tmp_path
):
    X = soundscapes[0]
    frames = fitted_pipeline.predict_frames(X)
    assert frames.shape == (8, 8, 2)
    assert len(fitted_pipeline.predict_events(X)) == 8
    path = tmp_path / "model.sed"
    sklearn_sed.save(fitted_pipeline, path)
    assert os.path.getsize(path) < 5_000_000  # the checkpoint is not inside
    loaded = sklearn_sed.load(path)
    np.testing.assert_allclose(loaded.predict_frames(X), frames, atol=1e-6)
    assert loaded[0].embedding_.checkpoint_sha256_ == (
        fitted_pipeline[0].embedding_.checkpoint_sha256_
    )


def test_load_finds_a_moved_checkpoint_only_when_told_and_refuses_another(
    fitted_pipeline, soundscapes, checkpoint_16k, other_checkpoint_16k, tmp_path
):
    X = soundscapes[0][:2]
    moved = tmp_path / "moved.pth"
    os.link(checkpoint_16k, moved) if hasattr(os, "link") else None
    model = tmp_path / "model.sed"
    pipe = Pipeline([("features", _fused(str(moved))), ("sed", fitted_pipeline[-1])])
    pipe[0].fit(X)
    sklearn_sed.save(pipe, model)
    os.remove(moved)
    with pytest.raises(ValueError, match=r"does not exist.*checkpoint=PATH"):
        sklearn_sed.load(model)
    loaded = sklearn_sed.load(model, checkpoint=checkpoint_16k)
    np.testing.assert_allclose(
        loaded.predict_frames(X), fitted_pipeline.predict_frames(X), atol=1e-6
    )
    with pytest.raises(ValueError, match="has SHA-256"):
        sklearn_sed.load(model, checkpoint=other_checkpoint_16k)


def test_a_bundled_checkpoint_loads_without_the_file(
    fitted_pipeline, soundscapes, tmp_path
):
    X = soundscapes[0][:2]
    path = tmp_path / "bundled.sed"
    sklearn_sed.save(fitted_pipeline, path, bundle_checkpoint=True)
    assert os.path.getsize(path) > 300_000_000
    entry = fitted_pipeline[0].embedding_
    real = entry.checkpoint
    try:
        entry.checkpoint = str(tmp_path / "gone.pth")  # as if deleted
        loaded = sklearn_sed.load(path)
    finally:
        entry.checkpoint = real
    np.testing.assert_allclose(
        loaded.predict_frames(X), fitted_pipeline.predict_frames(X), atol=1e-6
    )


@pytest.fixture
def calls(monkeypatch):
    """The clips each forward pass of Cnn14 embeds, in order."""
    seen = []
    forward = Cnn14Embedding.forward
    monkeypatch.setattr(
        Cnn14Embedding,
        "forward",
        lambda self, x: seen.append(len(x)) or forward(self, x),
    )
    return seen


def test_pipeline_memory_runs_the_pretrained_network_once(
    checkpoint_16k, soundscapes, tmp_path, calls
):
    X, y_weak, y_strong = soundscapes
    for _ in range(2):
        pipe = Pipeline(
            [("features", _fused(checkpoint_16k)), ("sed", _detector())],
            memory=str(tmp_path / "cache"),
        )
        pipe.set_params(sed__max_epochs=1).fit(X, y_weak, y_strong)
    assert sum(calls) == len(X)  # the second fit read the cache


def test_the_feature_store_holds_embeddings_and_checks_the_checkpoint(
    checkpoint_16k, soundscapes, tmp_path
):
    X = soundscapes[0][:4]
    emb = PretrainedEmbedding(
        checkpoint_16k, "panns-cnn14-16k", n_frames=8, duration=1.0
    )
    store = extract_to_store(emb, X, tmp_path / "emb.npy", dtype="float16")
    assert store.shape == (4, 8, 2048)
    np.testing.assert_allclose(
        np.asarray(store), emb.transform(X), rtol=1e-2, atol=1e-2
    )
    open_store(tmp_path / "emb.npy", emb, X=X)  # same settings and checkpoint
    other = PretrainedEmbedding(
        checkpoint_16k, "panns-cnn14-16k", n_frames=8, duration=1.0
    )
    other.fit()
    other.checkpoint_sha256_ = "0" * 64  # as if fitted with another checkpoint
    with pytest.raises(ValueError, match="checkpoint_sha256_ differ"):
        open_store(tmp_path / "emb.npy", other)


def test_train_with_embeddings_from_the_command_line(checkpoint_16k, tmp_path):
    import soundfile as sf

    from sklearn_sed.cli.main import main
    from sklearn_sed.datasets import make_domestic_soundscapes

    X, y_weak, y_strong = make_domestic_soundscapes(
        10, duration=2.0, sr=16000, n_classes=2, random_state=1
    )
    strong, weak = ["filename\tonset\toffset\tevent_label"], ["filename\tevent_labels"]
    for i, (x, w, s) in enumerate(zip(X, y_weak, y_strong, strict=True)):
        sf.write(tmp_path / f"c{i}.wav", x, 16000)
        if s is None:
            weak.append(f"c{i}.wav\t{','.join(w)}")
        else:
            strong += [f"c{i}.wav\t{a}\t{b}\t{c}" for a, b, c in s] or [
                f"c{i}.wav\t\t\t"
            ]
    (tmp_path / "strong.tsv").write_text("\n".join(strong) + "\n")
    (tmp_path / "weak.tsv").write_text("\n".join(weak) + "\n")
    sets = [
        "sr=16000",
        "duration=2.04",
        "n_fft=512",
        "win_length=320",
        "hop_length=128",
        "n_mels=16",
        "fmax=8000",
        "max_epochs=1",
        "pseudo_labels=None",
        "validation_fraction=None",
        "batch_size=4",
        "random_state=0",
        "verbose=0",
        "compile=False",
        "train_dtype=float32",
    ]
    argv = [
        "train",
        "--audio-dir",
        str(tmp_path),
        "--strong-tsv",
        str(tmp_path / "strong.tsv"),
        "--weak-tsv",
        str(tmp_path / "weak.tsv"),
        "--output",
        str(tmp_path / "m.sed"),
        "--embeddings",
        f"panns-cnn14-16k:{checkpoint_16k}",
    ]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    model = sklearn_sed.load(tmp_path / "m.sed")
    assert type(model[0]).__name__ == "FusedFeatures"
    assert model[0].embedding_.n_frames == 32  # 256 log-mel frames / 8
    assert model[-1].module.keywords["embed_dim"] == 2048
    out = tmp_path / "events.tsv"
    wav = str(tmp_path / "c0.wav")
    assert main(["predict", str(tmp_path / "m.sed"), wav, "--output", str(out)]) == 0
    assert out.read_text().startswith("filename\tonset")
    not_a_checkpoint = ["--checkpoint", wav, "--output", str(tmp_path / "e2.tsv")]
    assert main(["predict", str(tmp_path / "m.sed"), wav, *not_a_checkpoint]) == 2
    bad = [a if not a.startswith("panns") else "panns-cnn14-16k" for a in argv]
    assert main(bad) == 2  # NAME without :PATH
    assert main([*argv[:-1], "panns-cnn14-16k:" + str(tmp_path / "none.pth")]) == 2


# -- BEATs ------------------------------------------------------------------------
@pytest.mark.parametrize("n_mels", [23, 64, 80, 120])
def test_kaldi_fbank_equals_kaldi_native_fbank(n_mels):
    import kaldi_native_fbank as knf  # a test dependency (Kaldi's algorithm, in C++)

    x = (0.1 * np.random.default_rng(n_mels).standard_normal(16000)).astype(np.float32)
    got = kaldi_fbank(torch.from_numpy(x)[None] * 2**15, n_mels=n_mels)[0].numpy()
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = 16000
    opts.mel_opts.num_bins = n_mels
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(16000, (x * 2**15).tolist())
    fbank.input_finished()
    expected = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
    assert got.shape == expected.shape == (98, n_mels)
    np.testing.assert_allclose(got, expected, atol=1e-3)


#: The published BEATs encoder's state-dict names (layer 0 stands for each).
BEATS_KEYS = {
    "patch_embedding.weight",
    "layer_norm.weight",
    "layer_norm.bias",
    "post_extract_proj.weight",
    "post_extract_proj.bias",
    "encoder.pos_conv.0.weight_g",
    "encoder.pos_conv.0.weight_v",
    "encoder.pos_conv.0.bias",
    "encoder.layer_norm.weight",
    "encoder.layer_norm.bias",
    *(
        f"encoder.layers.0.{k}"
        for k in (
            "self_attn.grep_a",
            "self_attn.relative_attention_bias.weight",
            *(f"self_attn.{p}_proj.{w}" for p in "qkv" for w in ("weight", "bias")),
            "self_attn.out_proj.weight",
            "self_attn.out_proj.bias",
            "self_attn.grep_linear.weight",
            "self_attn.grep_linear.bias",
            "self_attn_layer_norm.weight",
            "self_attn_layer_norm.bias",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
            "final_layer_norm.weight",
            "final_layer_norm.bias",
        )
    ),
}


@pytest.fixture(scope="module")
def beats_checkpoint(tmp_path_factory):
    """Random BEATs weights in the official layout, with its cfg."""
    torch.manual_seed(0)
    net = BEATsEmbedding()
    path = tmp_path_factory.mktemp("beats") / "BEATs_iter3_plus_AS2M.pt"
    torch.save(
        {"cfg": dict(BEATS_CONFIG, dropout=0.1), "model": net.state_dict()}, path
    )
    return str(path), net


def test_beats_keeps_the_published_key_layout():
    keys = set(BEATsEmbedding().state_dict())
    assert {k for k in keys if not k.startswith("encoder.layers.")} | {
        k for k in keys if k.startswith("encoder.layers.0.")
    } == BEATS_KEYS
    assert len([k for k in keys if k.endswith("relative_attention_bias.weight")]) == 12


def test_beats_checkpoint_embeds_16_khz_frames_through_the_pipeline(beats_checkpoint):
    path, net = beats_checkpoint
    X = _clips(2, 1.0, 16000, seed=4)
    emb = PretrainedEmbedding(path, "beats", n_frames=4, duration=1.0)
    out = emb.fit_transform(X)
    with torch.no_grad():
        frames = net.eval()(torch.as_tensor(X))  # 1 s: 98 fbank frames, 6 tokens
    pooled = F.adaptive_avg_pool1d(frames.transpose(1, 2), 4).transpose(1, 2)
    assert frames.shape == (2, 6, 768)
    np.testing.assert_allclose(out, pooled.numpy(), rtol=1e-5, atol=1e-5)
    assert emb.network_config_["encoder_layers"] == 12
    fused = FusedFeatures(emb, LogMelExtractor(**{**LOGMEL, "duration": 1.0}))
    with pytest.raises(ValueError, match="differs"):  # durations disagree first
        fused.set_params(logmel__duration=1.008).fit(X)


def test_a_beats_variant_not_implemented_is_refused(beats_checkpoint, tmp_path):
    path, net = beats_checkpoint
    torch.save(
        {"cfg": dict(BEATS_CONFIG, layer_norm_first=True), "model": net.state_dict()},
        tmp_path / "prenorm.pt",
    )
    with pytest.raises(CheckpointError, match="layer_norm_first=True"):
        PretrainedEmbedding(tmp_path / "prenorm.pt", "beats").fit()
    with pytest.raises(CheckpointError, match="fits 'beats'"):
        PretrainedEmbedding(path, "panns-cnn14").fit()


def test_pseudo_labels_and_the_mean_teacher_train_on_fused_features(
    fitted_pipeline, soundscapes
):
    from sklearn_sed import MeanTeacher, PseudoLabelSchedule
    from sklearn_sed.labels import UNLABELED

    X, y_weak, y_strong = soundscapes
    F_ = fitted_pipeline[0].transform(X)
    y_weak = list(y_weak)
    unlabeled = [i for i, s in enumerate(y_strong) if s is None][:2]
    for i in unlabeled:
        y_weak[i] = UNLABELED
    sed = _detector().set_params(
        pseudo_labels=PseudoLabelSchedule(max_iter=1, unlabeled_confidence=0.51),
        mean_teacher=MeanTeacher(ema_decay=0.9),
        max_epochs=1,
    )
    sed.fit(F_, y_weak, y_strong)
    assert sed.n_unlabeled_ == len(unlabeled)
    assert sed.n_iter_ == 1
    assert sed.predict_frames(F_).shape == (8, 8, 2)


def test_grid_search_tunes_a_pipeline_with_embeddings_reading_them_once(
    checkpoint_16k, soundscapes, tmp_path, calls
):
    import sklearn
    from sklearn.model_selection import GridSearchCV, KFold

    from sklearn_sed import Decoder, event_f1_scorer

    X, y_weak, y_strong = soundscapes
    pipe = Pipeline(
        [
            ("features", _fused(checkpoint_16k)),
            ("sed", _detector().set_params(max_epochs=1, decoder=Decoder())),
        ],
        memory=str(tmp_path / "cache"),
    )
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            pipe,
            {"sed__decoder__threshold": [0.3, 0.5]},
            cv=KFold(2),
            scoring=event_f1_scorer,
            error_score="raise",
        )
        search.fit(X, y_weak, y_strong=y_strong)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # Without a cache: each of 2 candidates x 2 folds embeds its 4 training
    # and 4 scored clips, and the refit all 8 (40). The second candidate of
    # each fold reads its training clips' embeddings from the cache.
    assert sum(calls) <= 40 - 2 * 4


def test_a_pipeline_refuses_a_detector_whose_duration_differs_from_the_features(
    checkpoint_16k, soundscapes
):
    X, y_weak, y_strong = soundscapes
    pipe = Pipeline(
        [("features", _fused(checkpoint_16k)), ("sed", _detector())]
    ).set_params(sed__duration=10.0)
    with pytest.raises(
        ValueError, match=r"disagree on duration.*FusedFeatures\.logmel"
    ):
        pipe.fit(X, y_weak, y_strong)


def test_an_altered_model_file_cannot_make_load_run_a_pickle(
    fitted_pipeline, tmp_path, monkeypatch
):
    import zipfile

    from tests.conftest import with_manifest

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.sed"
    sklearn_sed.save(fitted_pipeline, path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"model": _RunsCode()}, f, protocol=2)

    def point_at_evil(manifest):
        manifest["steps"][0]["embedding"]["params"]["checkpoint"] = str(evil)

    with pytest.raises(ValueError, match="refused unread"):
        sklearn_sed.load(with_manifest(members, tmp_path, point_at_evil))

    def bundled_missing(manifest):
        manifest["steps"][0]["embedding"]["bundled"] = "nothing.safetensors"

    with pytest.raises(ValueError, match="damaged or altered"):
        sklearn_sed.load(with_manifest(members, tmp_path, bundled_missing))
    assert not (tmp_path / "PWNED").exists()


def test_a_stream_through_fused_features_gives_the_offline_events(
    fitted_pipeline, soundscapes, tmp_path
):
    import soundfile as sf

    from sklearn_sed import Decoder
    from sklearn_sed.deploy.streaming import StreamingDetector
    from sklearn_sed.inference import predict_file_events

    sklearn_sed.save(fitted_pipeline, tmp_path / "m.sed")
    pipe = sklearn_sed.load(tmp_path / "m.sed")
    y = np.concatenate(soundscapes[0]).astype(np.float32)  # 8 s
    probs = pipe.predict_frames(soundscapes[0])
    pipe[-1].set_params(decoder=Decoder(threshold=float(np.median(probs))))
    sf.write(tmp_path / "long.wav", y, 16000, subtype="FLOAT")
    offline = predict_file_events(pipe, tmp_path / "long.wav", overlap=0.5)
    assert offline  # the median threshold leaves events to compare
    detector = StreamingDetector(pipe, hop=0.504, max_event_sec=1e4)
    streamed = []
    for i in range(0, len(y), 3000):
        streamed += detector.push(y[i : i + 3000])
    streamed += detector.flush()
    key = sorted((round(a, 3), round(b, 3), c) for a, b, c, *_ in streamed)
    assert key == sorted((round(a, 3), round(b, 3), c) for a, b, c in offline)
