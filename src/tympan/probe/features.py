"""Per-input pooled features of a model's layers, captured with forward hooks.

For each input of a batch and each watched layer, the layer's output is read as
(batch, time, channels) (see ``tympan.probe.layers``) and pooled over the input's valid
frames into one vector: the per-channel mean followed by the per-channel standard deviation
(``2 * channels`` numbers). Pooling is done in float64.

Batches are a tensor ``x`` shaped (batch, time, ...) or a tuple ``(x, lengths)``; the model is
called as ``model(x)`` or ``model(x, lengths)``. With lengths, a layer whose output has
``T_layer`` frames for an input of ``T_input = x.shape[1]`` frames counts
``ceil(length * T_layer / T_input)`` valid frames (at least one); frames past that are padding
and never enter the features. Without lengths every frame is valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from tympan.errors import InvalidInputError
from tympan.probe.layers import as_batch_time_channels, channel_dim, output_tensor, resolve_layers

Batch = Any  # torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]


def split_batch(batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``x`` or ``(x,)`` or ``(x, lengths)`` -> (x, lengths or None), checked."""
    if isinstance(batch, (tuple, list)):
        if len(batch) not in (1, 2):
            raise InvalidInputError(f"a batch is x or (x, lengths), got a sequence of "
                                    f"{len(batch)} items")
        x, lengths = batch[0], (batch[1] if len(batch) == 2 else None)
    else:
        x, lengths = batch, None
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"a batch's inputs must be a tensor, got {type(x).__name__}")
    if x.dim() < 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InvalidInputError(f"inputs must be shaped (batch, time, ...) with batch and time "
                                f"> 0, got shape {tuple(x.shape)}")
    if lengths is not None:
        lengths = torch.as_tensor(lengths)
        if lengths.dtype.is_floating_point or lengths.dim() != 1 or len(lengths) != x.shape[0]:
            raise InvalidInputError(f"lengths must be integers shaped ({x.shape[0]},), got "
                                    f"{lengths.dtype} {tuple(lengths.shape)}")
        if int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]:
            raise InvalidInputError(f"lengths must lie in 1..{x.shape[1]} (the time axis of x), "
                                    f"got {int(lengths.min())}..{int(lengths.max())}")
    return x, lengths


def is_single_batch(data: Any) -> bool:
    """True when ``data`` is one batch rather than an iterable of batches."""
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return True
    return (isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor)
            and isinstance(data[1], torch.Tensor) and data[1].dim() == 1
            and data[0].dim() >= 2 and len(data[1]) == data[0].shape[0])


def iter_batches(data: Any) -> Iterator[Batch]:
    """Batches of a loader (any iterable of batches) or of a single batch."""
    if is_single_batch(data):
        yield data
        return
    if not isinstance(data, Iterable):
        raise InvalidInputError(f"expected a batch or an iterable of batches, got "
                                f"{type(data).__name__}")
    yield from data


def _pool(out: torch.Tensor, lengths: torch.Tensor | None, t_input: int) -> torch.Tensor:
    """(batch, time, channels) -> (batch, 2*channels) float64: mean and std over valid frames."""
    out = out.detach().to(torch.float64)
    b, t_layer, _ = out.shape
    if lengths is None:
        valid = torch.full((b,), t_layer, dtype=torch.long)
    else:
        lengths = lengths.to("cpu", torch.long)
        valid = ((lengths * t_layer + t_input - 1) // t_input).clamp(1, t_layer)
    mask = (torch.arange(t_layer)[None, :] < valid[:, None]).to(out.device)[..., None]
    n = valid.to(out.device, torch.float64)[:, None]
    out = torch.where(mask, out, torch.zeros((), dtype=out.dtype, device=out.device))
    mean = out.sum(1) / n
    dev = torch.where(mask, out - mean[:, None, :], torch.zeros((), dtype=out.dtype,
                                                                    device=out.device))
    std = (dev.square().sum(1) / n).sqrt()
    return torch.cat([mean, std], dim=1).cpu()


class FeatureCapture:
    """Forward hooks on the named layers of ``model`` that pool each input's features.

    ``capture(model, batch)`` runs one batch and returns {layer: (batch, 2*channels) array}.
    Use it as a context manager; leaving it removes every hook.
    """

    def __init__(self, model: nn.Module, layers: str | list[str] = "auto") -> None:
        self.model = model
        self.modules = resolve_layers(model, layers)
        self.names = list(self.modules)
        self._outputs: dict[str, torch.Tensor] = {}
        self._handles = [module.register_forward_hook(self._hook(name))
                         for name, module in self.modules.items()]

    def _hook(self, name: str):
        module = self.modules[name]

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            tensor = output_tensor(output)
            if tensor is not None:  # a module called twice keeps its last output
                self._outputs[name] = as_batch_time_channels(tensor, channel_dim(module))

        return hook

    def __enter__(self) -> FeatureCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def capture(self, batch: Batch) -> dict[str, np.ndarray]:
        x, lengths = split_batch(batch)
        try:
            device = next(self.model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
        self._outputs.clear()
        with torch.no_grad():
            x = x.to(device)
            if lengths is None:
                self.model(x)
            else:
                self.model(x, lengths.to(device))
        missing = [n for n in self.names if n not in self._outputs]
        if missing:
            raise InvalidInputError(f"layers {', '.join(map(repr, missing))} produced no "
                                    f"floating-point tensor in the forward pass; probe other "
                                    f"layers")
        feats: dict[str, np.ndarray] = {}
        for name in self.names:
            out = self._outputs[name]
            if out.shape[0] != x.shape[0]:
                raise InvalidInputError(
                    f"layer {name!r} put out {out.shape[0]} rows for a batch of {x.shape[0]}: "
                    f"its output is not batch-first; probe another layer")
            feats[name] = _pool(out, lengths, x.shape[1]).numpy()
        self._outputs.clear()
        return feats


def collect(model: nn.Module, data: Any, layers: str | list[str] = "auto",
            max_inputs: int | None = None) -> tuple[list[str], dict[str, np.ndarray]]:
    """Pooled features of every input in ``data`` (a batch or an iterable of batches), up
    to ``max_inputs``, with the model in eval mode (its mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    seen = 0
    try:
        with FeatureCapture(model, layers) as cap:
            names = cap.names
            for batch in iter_batches(data):
                feats = cap.capture(batch)
                for name in names:
                    parts.setdefault(name, []).append(feats[name])
                seen += len(feats[names[0]])
                if max_inputs is not None and seen >= max_inputs:
                    break
    finally:
        model.train(was_training)
    if seen == 0:
        raise InvalidInputError("the data yielded no inputs; pass a non-empty loader")
    return names, {n: np.concatenate(parts[n])[:max_inputs] for n in names}


def require_finite(feats: dict[str, np.ndarray], what: str) -> None:
    """Reference data must give finite features: a non-finite value cannot be profiled."""
    for name, values in feats.items():
        if not np.isfinite(values).all():
            raise InvalidInputError(f"layer {name!r} produced non-finite values on {what}; "
                                    f"the model or these inputs are broken")
