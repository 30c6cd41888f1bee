"""Backends behind one small interface (`serve.backends.base.ModelBackend`), chosen by name.

`BACKENDS[name](spec)` loads the model a `serve.lanes.ModelSpec` describes. Loaders import
their heavy libraries (transformers, onnxruntime) only when called.
"""

from __future__ import annotations

from collections.abc import Callable

from tuneloop.serve.backends.base import ModelBackend


def _torch(spec) -> ModelBackend:
    from tuneloop.serve.backends.torch_backend import TorchBackend

    return TorchBackend.load(spec)


def _onnx(spec) -> ModelBackend:
    from tuneloop.serve.backends.onnx_backend import OnnxBackend

    return OnnxBackend.load(spec)


BACKENDS: dict[str, Callable[..., ModelBackend]] = {"torch": _torch, "onnx": _onnx}
