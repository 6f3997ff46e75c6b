"""Hostile or damaged model files: never code, never unbounded memory, one error.

Every case here ends in the documented ``ValueError`` naming the file (or a
clean load); none runs code from the file or allocates what the file declares
before the weights are checked.
"""

import json
import os
import resource
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sklearn_sed
from sklearn_sed import PseudoLabelSED
from sklearn_sed.io import MAX_MEMBER_BYTES
from tests.conftest import (
    FAST_SED,
    MANIFEST,
    TINY_FEATURES,
    sed_entry,
    with_manifest,
    write_zip,
)


def test_path_parameters_are_never_restored_from_a_model_file(model_bytes, tmp_path):
    """Check memory and checkpoint_dir set in a file's JSON come back as None."""
    cache = tmp_path / "someone_elses_cache"
    cache.mkdir()

    def change(m):
        sed_entry(m)["params"]["memory"] = str(cache)
        sed_entry(m)["params"]["checkpoint_dir"] = str(tmp_path / "ckpt")

    loaded = sklearn_sed.load(with_manifest(model_bytes[1], tmp_path, change))
    assert loaded[-1].memory is None
    assert loaded[-1].checkpoint_dir is None


def test_saved_file_holds_no_path_parameter(tiny_dataset, tmp_path):
    """Check save() writes memory and checkpoint_dir as null."""
    d = tiny_dataset
    sed = PseudoLabelSED(**FAST_SED, checkpoint_dir=str(tmp_path / "ckpt"))
    sed.fit(d["F"][:12], d["y_weak"][:12], d["y_strong"][:12])
    sklearn_sed.save(sed, tmp_path / "m.sed")
    with zipfile.ZipFile(tmp_path / "m.sed") as zf:
        params = json.loads(zf.read(MANIFEST))["steps"][0]["params"]
    assert params["checkpoint_dir"] is None
    assert params["memory"] is None


def test_deflate_bomb_member_is_refused_before_reading(model_bytes, tmp_path):
    """Check a highly compressed member is refused from its header alone."""
    _, members = model_bytes
    bomb = {**members, MANIFEST: members[MANIFEST] + b" " * 20_000_000}
    path = write_zip(tmp_path / "bomb.sed", bomb, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="is compressed"):
        sklearn_sed.load(path)


def _state_small_sizes(path, name, size=100):
    """Rewrite the sizes that the local and central headers of member ``name``
    state to ``size``, keeping its compressed data and CRC: the lying-size
    ZIP that ``zipfile`` inflates whole before cutting to the stated size."""
    import struct

    data = bytearray(path.read_bytes())
    encoded = name.encode()
    for signature, size_at, name_len_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),  # local file header
        (b"PK\x01\x02", 24, 28, 46),  # central directory entry
    ):
        start = 0
        while (i := data.find(signature, start)) >= 0:
            start = i + 4
            (n,) = struct.unpack_from("<H", data, i + name_len_at)
            if bytes(data[i + name_at : i + name_at + n]) == encoded:
                struct.pack_into("<I", data, i + size_at, size)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
def test_member_that_lies_about_its_size_is_refused_unread(
    model_bytes, tmp_path, compression
):
    """Check a compressed member whose headers state a small size (and the
    CRC of its real, huge content) is refused before a byte is inflated: no
    memory grows."""
    _, members = model_bytes
    bomb = {**members, MANIFEST: members[MANIFEST] + b" " * 200_000_000}
    path = write_zip(tmp_path / "liar.sed", bomb, compression=compression)
    _state_small_sizes(path, MANIFEST)
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo(MANIFEST).file_size == 100  # the lie is read
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match="is compressed"):
        sklearn_sed.load(path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 50


def test_member_name_twice_is_refused(model_bytes, tmp_path):
    """Check a ZIP holding one member name twice (readers disagree on which
    copy counts) is refused."""
    _, members = model_bytes
    path = tmp_path / "twice.sed"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr(MANIFEST, members[MANIFEST])
    with pytest.raises(ValueError, match="occurs twice"):
        sklearn_sed.load(path)


@pytest.mark.parametrize(
    ("param", "value"),
    [("n_mels", 10_000_000), ("sr", 2**31 - 1), ("n_fft", 2**28), ("duration", 1e6)],
)
def test_extractor_settings_beyond_their_bounds_are_refused(
    model_bytes, tmp_path, param, value
):
    """Check a model file cannot declare extractor settings that allocate
    gigabytes at predict: each is bounded and checked at load."""

    def change(m):
        step = next(s for s in m["steps"] if s["type"] == "LogMelExtractor")
        step["params"][param] = value

    with pytest.raises(ValueError, match=param):
        sklearn_sed.load(with_manifest(model_bytes[1], tmp_path, change))


@pytest.mark.parametrize(("param", "value"), [("n_filters", 6000), ("n_blocks", 10**6)])
def test_network_settings_beyond_their_bounds_are_refused(
    model_bytes, tmp_path, param, value
):
    def change(m):
        sed_entry(m)["params"][param] = value

    with pytest.raises(ValueError, match=param):
        sklearn_sed.load(with_manifest(model_bytes[1], tmp_path, change))


def test_net_params_are_never_restored_from_a_model_file(model_bytes, tmp_path):
    """Check a model file cannot start DataLoader workers at predict."""

    def change(m):
        sed_entry(m)["params"]["net_params"] = {"iterator_valid__num_workers": 32}

    loaded = sklearn_sed.load(with_manifest(model_bytes[1], tmp_path, change))
    assert loaded[-1].net_params is None
    assert loaded[-1].net_.get_params().get("iterator_valid__num_workers", 0) == 0


def _with_weights(model_bytes, tmp_path, change):
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    _, members = model_bytes
    name = sed_entry(json.loads(members[MANIFEST]))["weights"]
    state = st_load(members[name])
    change(state)
    return write_zip(tmp_path / "weights.sed", {**members, name: st_save(state)})


def test_weights_of_another_dtype_are_refused(model_bytes, tmp_path):
    def change(state):
        key = next(k for k, v in state.items() if v.is_floating_point())
        state[key] = state[key].to(torch.int8)

    with pytest.raises(ValueError, match=r"torch\.int8"):
        sklearn_sed.load(_with_weights(model_bytes, tmp_path, change))


def test_weights_that_are_not_finite_are_refused(model_bytes, tmp_path):
    def change(state):
        key = next(k for k, v in state.items() if v.is_floating_point())
        state[key] = torch.full_like(state[key], float("nan"))

    with pytest.raises(ValueError, match="non-finite"):
        sklearn_sed.load(_with_weights(model_bytes, tmp_path, change))


def test_a_block_count_per_stage_saves_and_loads(tiny_dataset, tmp_path):
    """Check n_blocks=(1, 1, 1, 1), which save wrote, is read back."""
    d = tiny_dataset
    sed = PseudoLabelSED(**{**FAST_SED, "n_blocks": (1, 1, 1, 1)})
    sed.fit(d["F"][:12], d["y_weak"][:12], d["y_strong"][:12])
    sklearn_sed.save(sed, tmp_path / "m.sed")
    loaded = sklearn_sed.load(tmp_path / "m.sed")
    assert loaded.n_blocks == (1, 1, 1, 1)
    np.testing.assert_array_equal(
        loaded.predict_frames(d["F_test"]), sed.predict_frames(d["F_test"])
    )


def test_a_bytes_path_loads(model_bytes, tmp_path):
    path = tmp_path / "m.sed"
    path.write_bytes(model_bytes[0])
    assert sklearn_sed.load(os.fsencode(path)) is not None


def test_oversized_member_is_refused(model_bytes, tmp_path, monkeypatch):
    """Check a member above MAX_MEMBER_BYTES is refused without being read."""
    monkeypatch.setitem(MAX_MEMBER_BYTES, "manifest", 100)
    with pytest.raises(ValueError, match="limit"):
        sklearn_sed.load(write_zip(tmp_path / "m.sed", model_bytes[1]))


@pytest.mark.slow  # memory; runs in CI (make test)
def test_declared_architecture_is_checked_before_allocation(model_bytes, tmp_path):
    """Check n_filters=1000 (within the bound) in the JSON is refused, as
    the weights do not match, without building the net."""

    def change(m):
        sed_entry(m)["params"]["n_filters"] = 1000

    path = with_manifest(model_bytes[1], tmp_path, change)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match="do not match"):
        sklearn_sed.load(path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200_000  # a real 1000-filter ResNet needs > 5 GB


def _bad_cases():
    """(id, manifest change) pairs that must each be a ValueError."""

    def setp(key, value):
        return lambda m: sed_entry(m)["params"].__setitem__(key, value)

    def setf(key, value):
        return lambda m: sed_entry(m)["fitted"].__setitem__(key, value)

    return {
        "class count mismatch": lambda m: (
            setf("classes_", list("abcde"))(m),
            setf("class_weight_", [0.2] * 5)(m),
        ),
        "class weight mismatch": setf("class_weight_", [1.0]),
        "n_blocks mismatch": setp("n_blocks", 3),
        "unknown parameter": setp("colour", "blue"),
        "bad parameter type": setp("lr", "fast"),
        "no steps": lambda m: m.pop("steps"),
        "steps not a list": lambda m: m.__setitem__("steps", {"a": 1}),
        "step not an object": lambda m: m.__setitem__("steps", [1]),
        "unnamed step": lambda m: sed_entry(m).pop("name"),
        "class outside the allow-list": setp("module", {"class": "os.system"}),
        "module of the library": setp("module", {"class": "sklearn_sed.cli.main.os"}),
        "function, not a class": setp("module", {"class": "sklearn_sed.load"}),
        "optimizer that is a module": setp(
            "optimizer", {"class": "sklearn_sed.networks.resnet.ResNetSED"}
        ),
        "fitted private attribute": setf("_secret", 1),
        "missing weights member": lambda m: sed_entry(m).__setitem__(
            "weights", "nothing.safetensors"
        ),
        "extractor fitted junk": lambda m: m["steps"][0]["fitted"].__setitem__(
            "data_min_", [1, 2]
        ),
    }


@pytest.mark.parametrize("case", list(_bad_cases()))
def test_damaged_manifest_is_a_value_error_naming_the_file(model_bytes, tmp_path, case):
    """Check each tried damage raises the documented ValueError, nothing else."""
    path = with_manifest(model_bytes[1], tmp_path, _bad_cases()[case])
    with pytest.raises(ValueError, match=r"altered\.sed"):
        sklearn_sed.load(path)


def test_manifest_that_is_a_list_is_a_value_error(model_bytes, tmp_path):
    _, members = model_bytes
    path = write_zip(tmp_path / "list.sed", {**members, MANIFEST: b"[1, 2]"})
    with pytest.raises(ValueError, match=r"list\.sed"):
        sklearn_sed.load(path)


def test_folder_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        sklearn_sed.load(tmp_path)


def test_shuffled_weights_are_a_value_error(model_bytes, tmp_path):
    """Check weights of the right size but wrong shapes are refused."""
    _, members = model_bytes
    name = next(n for n in members if n.endswith(".safetensors"))
    n = int.from_bytes(members[name][:8], "little")
    header = json.loads(members[name][8 : 8 + n])
    key = next(k for k in header if k != "__metadata__")
    header[key]["shape"] = [*header[key]["shape"][::-1], 1]
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    damaged = len(blob).to_bytes(8, "little") + blob + members[name][8 + n :]
    path = write_zip(tmp_path / "shapes.sed", {**members, name: damaged})
    with pytest.raises(ValueError, match=r"shapes\.sed"):
        sklearn_sed.load(path)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_fuzzed_model_files_load_cleanly_or_raise_value_error(
    model_bytes, tmp_path, data
):
    """Fuzz: flip, cut or overwrite bytes anywhere in a model file.

    Every mutation either loads or raises ValueError (FileNotFoundError is
    impossible: the file exists); never another exception type.
    """
    raw = bytearray(model_bytes[0])
    kind = data.draw(st.sampled_from(["flip", "cut", "overwrite", "manifest"]))
    if kind == "flip":
        for pos in data.draw(st.lists(st.integers(0, len(raw) - 1), max_size=8)):
            raw[pos] ^= data.draw(st.integers(1, 255))
    elif kind == "cut":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "overwrite":
        pos = data.draw(st.integers(0, len(raw) - 1))
        chunk = data.draw(st.binary(min_size=1, max_size=64))
        raw[pos : pos + len(chunk)] = chunk
    else:  # a well-formed archive with a mutated JSON manifest
        members = dict(model_bytes[1])
        text = bytearray(members[MANIFEST])
        pos = data.draw(st.integers(0, len(text) - 1))
        text[pos : pos + 1] = data.draw(st.binary(min_size=0, max_size=3))
        members[MANIFEST] = bytes(text)
        write_zip(tmp_path / "fuzz.sed", members)
        raw = (tmp_path / "fuzz.sed").read_bytes()
    path = tmp_path / "fuzz.sed"
    path.write_bytes(bytes(raw))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        sklearn_sed.load(path)
    except ValueError as exc:
        message = str(exc)
    else:
        message = "fuzz.sed loaded"
    assert "fuzz.sed" in message
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 300_000  # bounded: no member is read past its limits


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    param=st.sampled_from(
        ["sr", "n_fft", "hop_length", "win_length", "n_mels", "duration", "sr_in"]
    ),
    value=st.one_of(
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0, 1, 2**31 - 1, 2**28, 10**7, 384_001, 65_537, 1025]),
    ),
)
def test_fuzzed_extractor_settings_load_within_bounds_or_raise(
    model_bytes, tmp_path, param, value
):
    """Fuzz the extractor settings of a model file: each loads only within
    its documented bound (and then transforms a clip in bounded memory), or
    is a ValueError naming the file."""
    from sklearn_sed.audio.features import (
        MAX_DURATION_SEC,
        MAX_N_FFT,
        MAX_N_MELS,
        MAX_SR,
    )

    def change(m):
        step = next(s for s in m["steps"] if s["type"] == "LogMelExtractor")
        step["params"][param] = value

    try:
        path = with_manifest(model_bytes[1], tmp_path, change)
    except ValueError:  # NaN or infinity is no JSON number: nothing to load
        return
    from sklearn_sed.audio.features import LogMelExtractor as Extractor

    candidate = Extractor(**{**TINY_FEATURES, param: value})
    try:
        candidate._validate_params()
    except (ValueError, TypeError):  # out of bounds: the file is refused
        with pytest.raises(ValueError, match=r"altered\.sed"):
            sklearn_sed.load(path)
        return
    model = sklearn_sed.load(path)
    ext = model[0]
    assert ext.sr <= MAX_SR
    assert ext.n_fft <= MAX_N_FFT
    assert ext.n_mels <= MAX_N_MELS
    assert ext.duration <= MAX_DURATION_SEC
