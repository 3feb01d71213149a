"""Which modules a probe watches, and how to read a module's output as (batch, time, channels).

``auto_layers`` picks the meaningful blocks of a model: its top-level modules, with
containers (``Sequential``, ``ModuleList``, ``ModuleDict``, and a module that holds its blocks
in a ``layers``/``blocks`` list, like ``nn.TransformerEncoder``) opened one block at a time.
Modules without parameters (activations, dropout, pooling) are left out: their statistics
repeat their neighbours'.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from tympan.errors import InvalidInputError

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_BLOCK_LISTS = ("layers", "blocks")
_CHANNELS_FIRST = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.BatchNorm1d, nn.BatchNorm2d,
                   nn.InstanceNorm1d, nn.GroupNorm)


def auto_layers(model: nn.Module) -> list[str]:
    """Names (as in ``model.named_modules()``) of the blocks worth watching, in order."""
    names: list[str] = []

    def visit(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(child, _CONTAINERS):
                visit(child, full)
            elif any(isinstance(getattr(child, n, None), nn.ModuleList) for n in _BLOCK_LISTS):
                block_list = next(n for n in _BLOCK_LISTS
                                  if isinstance(getattr(child, n, None), nn.ModuleList))
                visit(getattr(child, block_list), f"{full}.{block_list}")
            elif any(True for _ in child.parameters()):
                names.append(full)

    visit(model, "")
    if not names:
        raise InvalidInputError("the model has no modules with parameters to probe")
    return names


def resolve_layers(model: nn.Module, layers: str | list[str]) -> dict[str, nn.Module]:
    """``"auto"`` or a list of module names -> {name: module}; unknown names are an error."""
    modules = dict(model.named_modules())
    names = auto_layers(model) if layers == "auto" else list(layers)
    unknown = [n for n in names if n not in modules or n == ""]
    if unknown:
        known = ", ".join(auto_layers(model))
        raise InvalidInputError(f"no module named {', '.join(map(repr, unknown))} in the "
                                f"model (its blocks: {known})")
    scripted = [n for n in names if isinstance(modules[n], torch.jit.ScriptModule)]
    if scripted:  # torch refuses hooks on them, and their forward cannot be replaced
        raise InvalidInputError(
            f"cannot watch {', '.join(map(repr, scripted))}: a TorchScript module "
            f"(torch.jit.script) takes no hooks; name eager (nn.Module) layers, or probe the "
            f"model before scripting it")
    return {n: modules[n] for n in names}


def channel_dim(module: nn.Module) -> int:
    """The axis of a module's output that holds its channels (features)."""
    return 1 if isinstance(module, _CHANNELS_FIRST) else -1


def output_tensor(output: Any) -> torch.Tensor | None:
    """The tensor a module produced: the first of a tuple (RNNs return (output, state)),
    a PackedSequence's padded data; None when there is no floating-point tensor."""
    if type(output) is torch.Tensor:  # the usual case first: the guard asks on every request
        return output if output.is_floating_point() else None
    if isinstance(output, nn.utils.rnn.PackedSequence):
        output = nn.utils.rnn.pad_packed_sequence(output, batch_first=True)[0]
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
        if isinstance(output, nn.utils.rnn.PackedSequence):
            output = nn.utils.rnn.pad_packed_sequence(output, batch_first=True)[0]
    if isinstance(output, torch.Tensor) and output.is_floating_point():
        return output
    return None


def as_batch_time_channels(x: Any, dim: int) -> Any:
    """(batch, time, channels) view of an output (a tensor or an array) whose channels are on
    ``dim``; a (batch, channels) output becomes (batch, 1, channels)."""
    if x.ndim == 3 and isinstance(x, np.ndarray):  # the usual case, without a list built
        return x if dim in (-1, 2) else x.transpose((0, 2, 1) if dim == 1 else (1, 2, 0))
    if x.ndim == 1:
        return x[None, None, :]
    if isinstance(x, np.ndarray):  # (ndarray.transpose: a tenth of np.moveaxis's cost)
        dim %= x.ndim
        x = x.transpose([*range(dim), *range(dim + 1, x.ndim), dim])
    else:
        x = x.movedim(dim, -1)
    if x.ndim == 2:
        return x[:, None, :]
    return x.reshape(x.shape[0], -1, x.shape[-1])


def valid_frames(lengths: torch.Tensor, total: int, steps: int) -> torch.Tensor:
    """Per input, how many of a layer's ``steps`` frames are real (at least 1, at most
    ``steps``): the rest is padding.

    ``lengths``: per input, in input frames, of a batch padded to ``total`` frames. A layer
    that strides time by a whole factor ``s`` (``steps == ceil(total / s)``: a strided
    convolution with "same" padding, a pooling) makes ``ceil(length / s)`` frames of an input
    of ``length`` frames, exactly as many as it makes of that input alone; any other layer
    keeps ``ceil(length * steps / total)``. (The plain ratio over-counts by one frame when
    ``total`` is odd: 50 frames padded to 101 give 26 frames of 51 by the ratio, 25 alone.)
    """
    lengths = lengths.to("cpu", torch.long)
    stride = max(1, round(total / steps))
    if -(-total // stride) == steps:
        keep = (lengths + stride - 1) // stride
    else:
        keep = (lengths * steps + total - 1) // total
    return keep.clamp(1, steps)


def kept_frames(lengths: torch.Tensor, total: int, batch: int, steps: int) -> list[int] | None:
    """Per input, how many of a layer's ``steps`` frames are real (``valid_frames``), or
    None when all are. ``lengths``: per input, in input frames (on the CPU)."""
    if lengths.shape[0] != batch:
        raise InvalidInputError(f"lengths has {lengths.shape[0]} entries but a layer output "
                                f"has batch size {batch} (outputs must be batch-first)")
    keep = valid_frames(lengths, total, steps).tolist()
    return None if min(keep) >= steps else keep


_BOUNDED = {nn.Tanh: (0.0, 0.99), nn.Sigmoid: (0.5, 0.49), nn.Hardtanh: (0.0, 0.99),
            nn.Softsign: (0.0, 0.99), nn.GRU: (0.0, 0.99), nn.LSTM: (0.0, 0.99),
            nn.RNN: (0.0, 0.99)}
_BEFORE = {nn.Tanh: (0.0, 2.647), nn.Sigmoid: (0.0, 4.595)}  # atanh(0.99), logit(0.99)


def next_sibling(model: nn.Module, name: str) -> nn.Module | None:
    """The module that follows ``name`` in its parent ``Sequential`` (None if none)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if not isinstance(parent, nn.Sequential):
        return None
    names = [n for n, _ in parent.named_children()]
    i = names.index(child)
    return parent[i + 1] if i + 1 < len(names) else None


def saturation_of(model: nn.Module, name: str, absolute: float) -> tuple[float, float]:
    """(center, threshold): a value saturates when ``|x - center| >= threshold``.

    Bounded outputs (tanh, GRU/LSTM/RNN states: 0.99; sigmoid: within 0.01 of 0 or 1);
    a block feeding a tanh/sigmoid in its Sequential: where that activation reaches 0.99
    (|x| >= 2.647 before tanh, 4.595 before sigmoid); anything else: ``|x| >= absolute``.
    """
    module = model.get_submodule(name)
    for kind, rule in _BOUNDED.items():
        if isinstance(module, kind):
            return rule
    after = next_sibling(model, name)
    for kind, rule in _BEFORE.items():
        if isinstance(after, kind):
            return rule
    return (0.0, absolute)


def feeds_relu(model: nn.Module, name: str) -> bool:
    """Whether the next module in the block's Sequential is a ReLU (its negatives die)."""
    return isinstance(next_sibling(model, name), (nn.ReLU, nn.ReLU6))
