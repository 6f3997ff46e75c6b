"""Compare the library's BEATs encoder with ESPnet's copy of the published one.

No BEATs implementation installs from the package registry beside torch
2.13 (the published code and ESPnet's need ``torchaudio``, which is not
built for it, and ESPnet pulls dozens of packages), so this is a check run
by hand, not a test: it reads ``espnet2/asr/encoder/beats_encoder.py`` out
of an ESPnet wheel you have (``pip download --no-deps espnet``), stands in
for its few imports from the rest of ESPnet and from ``torchaudio`` (the
filter bank is this library's :func:`~sklearn_sed.embeddings.beats.kaldi_fbank`,
which ``tests/test_embeddings.py`` checks against ``kaldi-native-fbank``),
builds ESPnet's ``BeatsEncoder`` from a checkpoint of random weights in
the official layout (``{"cfg", "model"}``), and compares its output tokens
with the library's, clip by clip.

    python -m benchmarks.check_beats --espnet-wheel espnet-202511-py3-none-any.whl
"""

import argparse
import json
import sys
import tempfile
import types
import zipfile

import torch
from torch import nn

from sklearn_sed.embeddings.beats import BEATsEmbedding, kaldi_fbank
from sklearn_sed.embeddings.models import build_embedding_network

MEMBER = "espnet2/asr/encoder/beats_encoder.py"


def _stub(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def espnet_beats(wheel):
    """ESPnet's beats_encoder module, its outside imports stood in for."""
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read(MEMBER).decode()

    def fbank(waveform, num_mel_bins, sample_frequency, frame_length, frame_shift):
        assert (num_mel_bins, sample_frequency, frame_length, frame_shift) == (
            128,
            16000,
            25,
            10,
        )
        return kaldi_fbank(waveform)[0]

    kaldi = _stub("torchaudio.compliance.kaldi", fbank=fbank)
    _stub("torchaudio.compliance", kaldi=kaldi)
    _stub("torchaudio", compliance=sys.modules["torchaudio.compliance"])
    _stub("espnet2.asr.encoder.abs_encoder", AbsEncoder=nn.Module)
    _stub("espnet2.asr.specaug.specaug", SpecAug=object)
    _stub(
        "espnet.nets.pytorch_backend.nets_utils",
        make_pad_mask=None,
        roll_tensor=None,
    )
    module = types.ModuleType("espnet_beats_encoder")
    exec(compile(source, MEMBER, "exec"), module.__dict__)  # ESPnet's, run by hand
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.check_beats")
    parser.add_argument("--espnet-wheel", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    reference = espnet_beats(args.espnet_wheel)
    torch.manual_seed(0)
    mine = BEATsEmbedding()
    with torch.no_grad():  # not the identity of a fresh layer norm
        for p in mine.parameters():
            p.add_(0.02 * torch.randn_like(p))
    result = {"espnet_wheel": args.espnet_wheel, "seconds": args.seconds}
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/beats-random.pt"
        torch.save({"cfg": dict(mine.cfg), "model": mine.state_dict()}, path)
        loaded = build_embedding_network("beats", path)
        theirs = reference.BeatsEncoder(input_size=1, beats_ckpt_path=path)
        theirs.reload_pretrained_parameters()
        theirs.eval()
        # Every key of the layout in both: strict loading, both ways.
        state = torch.load(path, weights_only=True)["model"]
        info = theirs.load_state_dict(state, strict=False)
        result["keys_missing_in_file"] = list(info.missing_keys)
        result["keys_unknown_to_espnet"] = list(info.unexpected_keys)
        x = 0.1 * torch.randn(2, round(args.seconds * 16000))
        with torch.no_grad():
            got, _, _ = loaded.tokens(x)
            expected, _ = theirs.extract_features(x)
        diff = (got - expected).abs().max().item()
        result.update(
            tokens=list(got.shape),
            max_abs_difference=diff,
            max_abs_value=expected.abs().max().item(),
        )
    print(json.dumps(result, indent=1))
    layout_equal = not (info.missing_keys or info.unexpected_keys)
    return 0 if diff < 1e-4 and layout_equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
