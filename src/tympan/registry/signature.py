"""A version's input signature: the audio it takes, its front end, and tensor shapes with
their variable dimensions named, measured by running the model on two small batches."""

from __future__ import annotations

from typing import Any

from tympan.registry.inference import Inference

_PROBES = ((1, 0.5), (2, 0.8))  # (batch size, seconds): batch and time both change


def signature(inference: Inference) -> dict[str, Any]:
    import numpy as np
    import torch

    from tympan.audio.features import pad_waves

    rate = int(inference.sample_rate)
    rng = np.random.default_rng(0)
    shapes = []
    for batch, seconds in _PROBES:
        waves = [0.05 * rng.standard_normal(int(rate * seconds * (1 - 0.1 * i)))
                 .astype(np.float32) for i in range(batch)]
        with torch.inference_mode():
            inputs = inference.preprocess(*pad_waves(waves))
            outputs = inference.model(*inputs)
        shapes.append((_tensors(inputs), _tensors(outputs)))
    (inputs_a, outputs_a), (inputs_b, outputs_b) = shapes
    describe = getattr(inference, "describe", None)
    return {
        "audio": {"sample_rate": rate, "channels": 1, "dtype": "float32",
                  "layout": "(batch, samples) zero-padded, with lengths"},
        "front_end": describe() if callable(describe) else {},
        "inputs": _specs(inputs_a, inputs_b),
        "outputs": _specs(outputs_a, outputs_b),
    }


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in _tensors(v)]
    return []


def _specs(first: list[Any], second: list[Any]) -> list[dict[str, Any]]:
    """dtype and shape of each tensor; a dimension that follows the batch size is "batch",
    one that changes with the audio's duration "time"."""
    specs = []
    for a, b in zip(first, second, strict=False):
        shape: list[Any] = []
        for i, (da, db) in enumerate(zip(a.shape, b.shape, strict=False)):
            if da == db:
                shape.append(int(da))
            elif i == 0 and (da, db) == (_PROBES[0][0], _PROBES[1][0]):
                shape.append("batch")
            else:
                shape.append("time")
        specs.append({"dtype": str(a.dtype).removeprefix("torch."), "shape": shape})
    return specs
