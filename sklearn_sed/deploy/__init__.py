"""Detection where it is used: an ONNX model that runs without PyTorch.

- :func:`export_onnx` (needs PyTorch): a fitted pipeline's network as an
  ONNX file, with its front end and decoding settings inside.
- :class:`OnnxDetector` (needs ``onnxruntime`` only, ``pip install
  "sklearn-sed[onnx]"``): reads that file and detects events as the
  pipeline does, from files or waveforms, with the same log-mel front end
  (:mod:`.frontend`, librosa) and the same decoding.
- :class:`StreamingDetector`: events of a live stream (a pipeline or an
  :class:`OnnxDetector`), each reported once (:mod:`.streaming`);
  :mod:`.pcm` reads WAV or raw PCM from a pipe for ``sklearn-sed listen``.

Names load on first use, so importing :class:`OnnxDetector` never imports
PyTorch.
"""

from sklearn_sed._lazy import lazy_names

__all__ = ["OnnxDetector", "StreamEvent", "StreamingDetector", "export_onnx"]

_HOMES = {
    "OnnxDetector": "onnx_detector",
    "StreamEvent": "streaming",
    "StreamingDetector": "streaming",
    "export_onnx": "onnx_export",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
