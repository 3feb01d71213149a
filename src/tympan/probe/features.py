"""Per-input pooled features of a model's layers, captured with forward hooks.

For each input of a batch and each watched layer, the layer's output is read as
(batch, time, channels) (see ``tympan.probe.layers``) and pooled over the input's valid
frames into one vector: the per-channel mean followed by the per-channel standard deviation
(``2 * channels`` numbers), accumulated in the layer's precision and returned as float64
(``pool``; ``pooled_features`` pools outputs captured elsewhere).

Batches are a tensor ``x`` shaped (batch, time, ...) or a tuple ``(x, lengths)``; the model is
called as ``model(x)`` or ``model(x, lengths)``. With lengths, a layer whose output has
``T_layer`` frames for an input of ``T_input = x.shape[1]`` frames counts
``ceil(length / s)`` valid frames when it strides time by a whole factor ``s``, else
``ceil(length * T_layer / T_input)`` (at least one; ``layers.valid_frames``); frames past that
are padding and never enter the features. Without lengths every frame is valid.

Why inputs are regrouped by length (``padding="split"``, the default): masking the pooling is
not enough, because padding reaches the valid frames *through the model* (a convolution's
receptive field at the end of an input, a norm over the time axis, an unpacked RNN running
backwards through the padding). An input's features would then depend on what it was batched
with. So a padded batch is run as sub-batches of equal length, each cut to its length: no
input ever sees padding, and its features are the same alone or in any batch (up to float
rounding of batched kernels, about 1e-7 relative). ``padding="batch"`` runs the padded batch
as given, for models known to mask their padding (faster on batches of mixed lengths).

An output head (``OutputHead``: the module whose output is the model's logits, and the CTC
blank class if any) adds three per-input scores computed over the same valid frames:
``energy`` (mean over frames of ``-logsumexp(logits)``), ``msp`` (mean maximum softmax
probability) and ``blank_ratio`` (fraction of frames whose best class is the blank; NaN
without a blank). They are returned under the key ``OUTPUT_KEY``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tympan.errors import InvalidInputError
from tympan.probe.layers import (
    as_batch_time_channels,
    channel_dim,
    output_tensor,
    resolve_layers,
    valid_frames,
)

Batch = Any  # torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]
PADDINGS = ("split", "batch")
OUTPUT_KEY = "@output"  # collect()'s key for the output head's (n, 3) scores
OUTPUT_SCORES = ("energy", "msp", "blank_ratio")


@dataclass(frozen=True)
class OutputHead:
    """Where a model's logits come from: the module whose output they are (before any
    softmax), and the CTC blank class, if the model has one."""

    layer: str
    blank: int | None = None


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


def _valid(b: int, t_layer: int, lengths: torch.Tensor | None, t_input: int) -> torch.Tensor:
    if lengths is None:
        return torch.full((b,), t_layer, dtype=torch.long)
    return valid_frames(lengths, t_input, t_layer)


def _frame_mask(b: int, t_layer: int, lengths: torch.Tensor | None, t_input: int,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(batch, time) bool mask of the valid frames and (batch,) their counts, or None when
    every frame is valid (an unpadded batch: a request alone)."""
    if lengths is None:
        return None
    valid = _valid(b, t_layer, lengths, t_input)
    if int(valid.min()) == t_layer:
        return None
    valid = valid.to(device)
    return torch.arange(t_layer, device=device)[None, :] < valid[:, None], valid


def pool(out: torch.Tensor, lengths: torch.Tensor | None, t_input: int) -> torch.Tensor:
    """A layer's (batch, time, channels) output -> (batch, 2*channels) float64: per input, the
    mean and standard deviation of each channel over its valid frames (``valid_frames``).

    In the output's precision (float32: about 1e-6 relative next to a float64 pooling), no
    copy of the batch in float64: pooling cost as much as the model's forward pass on small
    speech models, which the serving guard pays on every batch. An unpadded batch (a request
    alone) skips building the mask.
    """
    mean, std = _mean_std(out, lengths, t_input)
    return torch.cat([mean, std], dim=1).to("cpu", torch.float64)


def _mean_std(out: torch.Tensor, lengths: torch.Tensor | None, t_input: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    x = out.detach()
    if x.dtype != torch.float64:
        x = x.float()
    b, t_layer, _ = x.shape
    masked = _frame_mask(b, t_layer, lengths, t_input, x.device)
    # (batch, 1, time): 1/n on an input's valid frames, 0 on its padding. (Not var_mean: 12x
    # slower than two products over the time axis of a (1, 90, 657) output.)
    if masked is None:
        weights = x.new_ones((b, 1, t_layer)) / t_layer
    else:
        mask, valid = masked
        weights = (mask.to(x.dtype) / valid.to(x.dtype)[:, None])[:, None, :]
    mean = torch.bmm(weights, x)
    dev = x - mean
    return mean[:, 0], torch.bmm(weights, dev * dev)[:, 0].sqrt()


def pooled_features(outputs: Mapping[str, torch.Tensor], layers: Sequence[str],
                    head: OutputHead | None, lengths: torch.Tensor | None,
                    t_input: int) -> dict[str, np.ndarray]:
    """The probe's features of layer outputs already captured: each of ``layers`` pooled
    (``pool``) and, with a ``head``, its output scores under ``OUTPUT_KEY``. ``outputs``:
    {layer: (batch, time, channels)} of one batch of ``t_input`` input frames padded past
    ``lengths`` (None: no padding). What ``FeatureCapture`` computes from its hooks, for
    outputs that come from elsewhere (an exported model run by onnxruntime).

    Layers whose outputs share their time axis and dtype (the blocks of an encoder) are
    pooled as one: their channels side by side, one pooling for all, one conversion to
    float64, each layer's features a view of the result. Pooling is per channel, so this is
    the same arithmetic in a fifth of the calls, and on a lone request the serving guard
    pays per call (a few microseconds each), not per frame."""
    rows = None if lengths is None else len(lengths)
    if lengths is not None and int(lengths.min()) == t_input:
        lengths = None  # unpadded (a request alone): every layer's frames are all valid
    feats: dict[str, np.ndarray] = {}
    alike: dict[tuple[int, torch.dtype], list[torch.Tensor]] = {}
    names: dict[tuple[int, torch.dtype], list[str]] = {}
    for name in layers:
        out = torch.as_tensor(outputs[name])
        if rows is not None and out.shape[0] != rows:
            raise InvalidInputError(
                f"layer {name!r} put out {out.shape[0]} rows for a batch of {rows}: "
                f"its output is not batch-first; probe another layer")
        key = (out.shape[1], out.dtype)  # pooled together: one time axis, one dtype
        alike.setdefault(key, []).append(out)
        names.setdefault(key, []).append(name)
    for key, parts in alike.items():
        mean, std = _mean_std(torch.cat(parts, dim=2) if len(parts) > 1 else parts[0],
                              lengths, t_input)
        widths = tuple(p.shape[2] for p in parts)
        both = torch.cat([mean, std], dim=1).to("cpu", torch.float64).numpy()
        # all means then all stds -> each layer's means and stds side by side
        flat = both[:, _layer_order(widths)]
        start = 0
        for name, width in zip(names[key], widths, strict=True):
            feats[name] = flat[:, start:start + 2 * width]
            start += 2 * width
    if head is not None:
        feats[OUTPUT_KEY] = output_scores(torch.as_tensor(outputs[head.layer]), lengths,
                                          t_input, head.blank)
    return {name: feats[name] for name in layers} | (
        {OUTPUT_KEY: feats[OUTPUT_KEY]} if head is not None else {})


@functools.lru_cache(maxsize=64)
def _layer_order(widths: tuple[int, ...]) -> np.ndarray:
    """Columns of [means of all layers, stds of all layers] in the order [means, stds] of
    each layer in turn."""
    total, start, order = sum(widths), 0, []
    for width in widths:
        order += [*range(start, start + width), *range(total + start, total + start + width)]
        start += width
    return np.array(order)


def output_scores(logits: torch.Tensor, lengths: torch.Tensor | None, t_input: int,
                  blank: int | None) -> np.ndarray:
    """(batch, time, classes) logits -> (batch, 3) float64: energy, msp and blank ratio over
    each input's valid frames (blank ratio NaN when ``blank`` is None), in one compiled call
    (``kernel.output_scores``: a dozen numpy calls cost more than the model's head)."""
    from tympan.probe.kernel import output_scores as compiled

    b, t_layer, classes = logits.shape
    if blank is not None and not 0 <= blank < classes:
        raise InvalidInputError(f"the blank class {blank} is not one of the head's {classes} "
                                f"outputs")
    valid = np.full(b, t_layer) if lengths is None else \
        _valid(b, t_layer, lengths, t_input).numpy()
    x = logits.detach().cpu()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.double()
    return compiled(x.numpy(), valid, -1 if blank is None else blank)


class FeatureCapture:
    """Forward hooks on the named layers of ``model`` that pool each input's features.

    ``capture(model, batch)`` runs one batch and returns {layer: (batch, 2*channels) array}
    (and, with a ``head``, its scores under ``OUTPUT_KEY``). ``padding``: ``"split"`` runs a
    padded batch as unpadded sub-batches of equal length, ``"batch"`` as given (see the module
    docstring). Use it as a context manager; leaving it removes every hook.
    """

    def __init__(self, model: nn.Module, layers: str | list[str] = "auto",
                 head: OutputHead | None = None, padding: str = "split") -> None:
        if padding not in PADDINGS:
            raise InvalidInputError(f"padding must be one of {', '.join(PADDINGS)}, got "
                                    f"{padding!r}")
        self.model = model
        self.modules = resolve_layers(model, layers)
        self.names = list(self.modules)
        self.head = head
        self.padding = padding
        hooked = dict(self.modules)
        if head is not None:
            hooked |= resolve_layers(model, [head.layer])
        self._outputs: dict[str, torch.Tensor] = {}
        self._handles = [module.register_forward_hook(self._hook(name, module))
                         for name, module in hooked.items()]

    def _hook(self, name: str, module: nn.Module):
        dim, outputs = channel_dim(module), self._outputs

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            tensor = output_tensor(output)
            if tensor is not None:  # a module called twice keeps its last output
                outputs[name] = as_batch_time_channels(tensor, dim)

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
        if lengths is None or self.padding == "batch" or bool((lengths == x.shape[1]).all()):
            return self._run(x, lengths)[1]
        out: dict[str, np.ndarray] = {}
        for length in torch.unique(lengths).tolist():
            rows = (lengths == length).nonzero().squeeze(1)
            part = self._run(x[rows, :length], lengths[rows])[1]
            for name, values in part.items():
                if name not in out:
                    out[name] = np.empty((len(x), values.shape[1]), values.dtype)
                out[name][rows.numpy()] = values
        return out

    def forward(self, batch: Batch) -> tuple[Any, dict[str, np.ndarray]]:
        """The model's output for ``batch`` run as given (``padding="batch"``) and the
        features of that same forward pass."""
        if self.padding != "batch":
            raise InvalidInputError('forward() runs a batch as given: padding="batch"')
        return self._run(*split_batch(batch))

    def _run(self, x: torch.Tensor, lengths: torch.Tensor | None
             ) -> tuple[Any, dict[str, np.ndarray]]:
        try:
            device = next(self.model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
        self._outputs.clear()
        with torch.no_grad():
            x = x.to(device)
            output = self.model(x) if lengths is None else self.model(x, lengths.to(device))
        wanted = self.names + ([self.head.layer] if self.head is not None else [])
        missing = [n for n in wanted if n not in self._outputs]
        if missing:
            raise InvalidInputError(f"layers {', '.join(map(repr, missing))} produced no "
                                    f"floating-point tensor in the forward pass; probe other "
                                    f"layers")
        for name in self.names:
            out = self._outputs[name]
            if out.shape[0] != x.shape[0]:
                raise InvalidInputError(
                    f"layer {name!r} put out {out.shape[0]} rows for a batch of {x.shape[0]}: "
                    f"its output is not batch-first; probe another layer")
        try:
            return output, pooled_features(self._outputs, self.names, self.head, lengths,
                                           x.shape[1])
        finally:
            self._outputs.clear()


def collect(model: nn.Module, data: Any, layers: str | list[str] = "auto",
            max_inputs: int | None = None, head: OutputHead | None = None,
            padding: str = "split") -> tuple[list[str], dict[str, np.ndarray]]:
    """Pooled features of every input in ``data`` (a batch or an iterable of batches), up
    to ``max_inputs``, with the model in eval mode (its mode is restored afterwards); with a
    ``head``, its output scores under ``OUTPUT_KEY`` too."""
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    seen = 0
    try:
        with FeatureCapture(model, layers, head, padding) as cap:
            names = cap.names
            for batch in iter_batches(data):
                feats = cap.capture(batch)
                for name in feats:
                    parts.setdefault(name, []).append(feats[name])
                seen += len(feats[names[0]])
                if max_inputs is not None and seen >= max_inputs:
                    break
    finally:
        model.train(was_training)
    if seen == 0:
        raise InvalidInputError("the data yielded no inputs; pass a non-empty loader")
    return names, {n: np.concatenate(v)[:max_inputs] for n, v in parts.items()}


def require_finite(feats: dict[str, np.ndarray], what: str) -> None:
    """Reference data must give finite features: a non-finite value cannot be profiled."""
    for name, values in feats.items():
        if name != OUTPUT_KEY and not np.isfinite(values).all():
            raise InvalidInputError(f"layer {name!r} produced non-finite values on {what}; "
                                    f"the model or these inputs are broken")
