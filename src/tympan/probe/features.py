"""Per-input pooled features of a model's layers, captured as each layer returns (``Tap``).

For each input of a batch and each watched layer, the layer's output is read as
(batch, time, channels) (see ``tympan.probe.layers``) and pooled over the input's valid
frames into one vector: the per-channel mean followed by the per-channel standard deviation
(``2 * channels`` numbers), in float64 (``pool``; ``pooled_features`` pools outputs captured
elsewhere).

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

import itertools
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tympan.errors import InvalidInputError
from tympan.probe import kernel
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
    return _split(batch)[:2]


def _split(batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """``split_batch``, and the shortest input's length (x's time axis without lengths)."""
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
    shape = x.shape  # (once: each read makes a torch.Size)
    if len(shape) < 2 or shape[0] == 0 or shape[1] == 0:
        raise InvalidInputError(f"inputs must be shaped (batch, time, ...) with batch and time "
                                f"> 0, got shape {tuple(shape)}")
    if lengths is not None:
        if not isinstance(lengths, torch.Tensor):
            lengths = torch.as_tensor(lengths)
        if lengths.is_floating_point() or lengths.dim() != 1 or lengths.shape[0] != shape[0]:
            raise InvalidInputError(f"lengths must be integers shaped ({shape[0]},), got "
                                    f"{lengths.dtype} {tuple(lengths.shape)}")
        values = lengths.tolist()  # one call: the serving guard checks every request's
        shortest = min(values)
        if shortest < 1 or max(values) > shape[1]:
            raise InvalidInputError(f"lengths must lie in 1..{shape[1]} (the time axis of x), "
                                    f"got {shortest}..{max(values)}")
        return x, lengths, shortest
    return x, lengths, shape[1]


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


def _valid(b: int, t_layer: int, lengths: torch.Tensor | None, t_input: int) -> np.ndarray:
    """(batch,) int64: each input's valid frames of a layer's ``t_layer``."""
    if lengths is None:
        return np.full(b, t_layer, dtype=np.int64)
    return valid_frames(lengths, t_input, t_layer).numpy()


def pool(out: Any, lengths: torch.Tensor | None, t_input: int) -> np.ndarray:
    """A layer's (batch, time, channels) output (a tensor or an array) -> (batch,
    2*channels) float64: per input, the mean and standard deviation of each channel over its
    valid frames (``valid_frames``), in float64, in one compiled call (``kernel.pool``; torch's
    pooling was a dozen calls, of a few microseconds each on every request the serving guard
    scores)."""
    return _pool(_as_array(out), _padded(lengths, t_input), t_input)


def _pool(x: np.ndarray, lengths: torch.Tensor | None, t_input: int) -> np.ndarray:
    """``pool`` of an array, ``lengths`` None unless padded (``_padded``)."""
    return kernel.pool(x, _valid(x.shape[0], x.shape[1], lengths, t_input))


def _padded(lengths: torch.Tensor | None, t_input: int) -> torch.Tensor | None:
    """``lengths``, or None when no input is padded (a request alone): then every layer's
    frames are all valid."""
    return None if lengths is None or int(lengths.min()) == t_input else lengths


def pooled_features(outputs: Mapping[str, Any], layers: Sequence[str],
                    head: OutputHead | None, lengths: torch.Tensor | None,
                    t_input: int) -> dict[str, np.ndarray]:
    """The probe's features of layer outputs captured elsewhere (an exported model run by
    onnxruntime), as ``FeatureCapture`` computes them from its taps: each of ``layers``
    pooled (``pool``) and, with a ``head``, its output scores under ``OUTPUT_KEY``.
    ``outputs``: {layer: (batch, time, channels)} of one batch of ``t_input`` input frames
    padded past ``lengths`` (None: no padding)."""
    lengths = _padded(lengths, t_input)
    rows = None if lengths is None else len(lengths)
    feats: dict[str, np.ndarray] = {}
    for name in layers:
        out = _as_array(outputs[name])
        if rows is not None and out.shape[0] != rows:
            raise _not_batch_first(name, out.shape[0], rows)
        feats[name] = _pool(out, lengths, t_input)
    if head is not None:
        feats[OUTPUT_KEY] = output_scores(outputs[head.layer], lengths, t_input, head.blank)
    return feats


def _not_batch_first(name: str, got: int, rows: int) -> InvalidInputError:
    return InvalidInputError(f"layer {name!r} put out {got} rows for a batch of {rows}: its "
                             f"output is not batch-first; probe another layer")


def check_blank(blank: int | None, classes: int) -> int:
    """A head's blank class as the compiled output scores take it (-1: none), refused when it
    is not one of the head's ``classes`` outputs."""
    if blank is None:
        return -1
    if not 0 <= blank < classes:
        raise InvalidInputError(f"the blank class {blank} is not one of the head's {classes} "
                                f"outputs")
    return blank


def _as_array(out: Any) -> np.ndarray:
    """A layer's output as a float32 or float64 array (a view of a CPU tensor)."""
    if isinstance(out, torch.Tensor):
        if out.requires_grad:
            out = out.detach()
        if out.dtype not in (torch.float32, torch.float64):
            out = out.float()
        return out.numpy() if out.is_cpu else out.cpu().numpy()
    out = np.asarray(out)
    return out if out.dtype in (np.float32, np.float64) else out.astype(np.float32)


def output_scores(logits: torch.Tensor | np.ndarray, lengths: torch.Tensor | None, t_input: int,
                  blank: int | None) -> np.ndarray:
    """(batch, time, classes) logits -> (batch, 3) float64: energy, msp and blank ratio over
    each input's valid frames (blank ratio NaN when ``blank`` is None), in one compiled call
    (``kernel.output_scores``: a dozen numpy calls cost more than the model's head)."""
    b, t_layer, classes = logits.shape
    return kernel.output_scores(_as_array(logits), _valid(b, t_layer, lengths, t_input),
                                check_blank(blank, classes))


@dataclass(slots=True)  # not frozen: made on every request the serving guard scores
class Kept:
    """A lone input's watched outputs as its forward pass made them, not yet pooled
    (``FeatureCapture.forward(kept=True)``): one ``kernel.Place`` for each of ``names`` in
    order, then one for the ``head``'s logits, each a float32 (batch, outer, inner) block of
    memory, channels then time where its time-inner flag is 1, else time then channels, and
    beside each the tensor or array that owns that memory (``held``: alive while this is).
    Every frame is valid. ``features()`` pools them as the capture would have."""

    names: tuple[str, ...]
    head: OutputHead | None
    held: tuple[Any, ...]
    places: tuple[kernel.Place, ...]

    @classmethod
    def of_arrays(cls, names: Sequence[str], head: OutputHead | None,
                  arrays: Sequence[np.ndarray], inner: Sequence[int]) -> Kept:
        """``Kept`` of C-contiguous float32 arrays, (batch, channels, time) where ``inner``
        is 1, else (batch, time, channels)."""
        for a in arrays:
            if a.dtype != np.float32 or a.ndim != 3 or not a.flags.c_contiguous or \
                    a.shape[0] != arrays[0].shape[0]:
                raise InvalidInputError(f"kept outputs must be C-contiguous float32 (batch, "
                                        f"outer, inner) arrays of one batch, got {a.dtype} "
                                        f"{a.shape}")
        return cls(tuple(names), head, tuple(arrays),
                   tuple(_array_place(a, i) for a, i in zip(arrays, inner, strict=True)))

    @property
    def inner(self) -> tuple[int, ...]:
        return tuple(place[4] for place in self.places)

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """Each place as a read-only (batch, outer, inner) array over its owner's memory."""
        return tuple(map(self.array, range(len(self.places))))

    def array(self, i: int) -> np.ndarray:
        owner = self.held[i]
        a = owner.numpy() if isinstance(owner, torch.Tensor) else owner  # (same address)
        _, b, outer, inner, _ = self.places[i]
        return np.lib.stride_tricks.as_strided(a, (b, outer, inner),
                                               (4 * outer * inner, 4 * inner, 4),
                                               writeable=False)

    def btc(self, i: int) -> np.ndarray:
        """The ``i``-th output seen as (batch, time, channels)."""
        a = self.array(i)
        return a.transpose(0, 2, 1) if self.places[i][4] else a

    def features(self) -> dict[str, np.ndarray]:
        feats = {}
        for i, name in enumerate(self.names):
            x = self.btc(i)
            feats[name] = kernel.pool(x, np.full(x.shape[0], x.shape[1], np.int64))
        if self.head is not None:
            logits = self.btc(len(self.names))
            feats[OUTPUT_KEY] = output_scores(logits, None, logits.shape[1], self.head.blank)
        return feats


def _array_place(a: np.ndarray, time_inner: int) -> kernel.Place:
    """Where a C-contiguous float32 (batch, outer, inner) array lies."""
    return a.ctypes.data, *a.shape, int(time_inner)


def _place(tensor: torch.Tensor, dim: int) -> kernel.Place | None:
    """Where a float32 CPU output whose channels are on ``dim`` lies (``kernel.Place``) when
    its memory is laid out as channels then time or time then channels per input; else None.
    (A size-1 axis may have any stride.) A (batch, channels) output has one frame."""
    shape, strides = tensor.shape, tensor.stride()
    if len(shape) == 3:
        if dim == 1:
            (b, c, t), (sb, sc, st) = shape, strides
        else:
            (b, t, c), (sb, st, sc) = shape, strides
    elif len(shape) == 2:
        (b, c), (sb, sc), t, st = shape, strides, 1, 0
    else:
        return None
    if b == 0 or c == 0 or t == 0 or not (sb == c * t or b == 1):
        return None
    if (st == 1 or t == 1) and (sc == t or c == 1):
        return tensor.data_ptr(), b, c, t, 1
    if (sc == 1 or c == 1) and (st == c or t == 1):
        return tensor.data_ptr(), b, t, c, 0
    return None


class Tap:
    """Calls ``fn(output)`` after each call of ``module``, until ``remove()``.

    Not a forward hook: torch runs a module that has hooks through its slow path, about 6 us
    a call (30 to 40 us a request for the serving guard's 5 layers), where this costs one
    Python call. The module's ``forward`` is wrapped by an instance attribute over its class's
    method (as accelerate's hooks do); ``remove`` takes it away again, or, when someone
    wrapped ``forward`` after us, leaves a wrapper that only passes calls on. A TorchScript
    module takes neither (``resolve_layers`` refuses one).
    """

    def __init__(self, module: nn.Module, fn: Any) -> None:
        self.module, self.active = module, True
        self._before = module.__dict__.get("forward")  # someone's wrapper, or None
        forward = module.forward

        def watched(*args: Any, **kwargs: Any) -> Any:
            output = forward(*args, **kwargs)
            if self.active:
                fn(output)
            return output

        self._watched = watched
        module.forward = watched

    def remove(self) -> None:
        self.active = False
        if self.module.__dict__.get("forward") is self._watched:
            if self._before is None:
                del self.module.forward
            else:
                self.module.forward = self._before


class FeatureCapture:
    """Taps (``Tap``) on the named layers of ``model`` that pool each input's features.

    ``capture(model, batch)`` runs one batch and returns {layer: (batch, 2*channels) array}
    (and, with a ``head``, its scores under ``OUTPUT_KEY``). ``padding``: ``"split"`` runs a
    padded batch as unpadded sub-batches of equal length, ``"batch"`` as given (see the module
    docstring). Use it as a context manager; leaving it removes every tap.
    """

    def __init__(self, model: nn.Module, layers: str | list[str] = "auto",
                 head: OutputHead | None = None, padding: str = "split") -> None:
        if padding not in PADDINGS:
            raise InvalidInputError(f"padding must be one of {', '.join(PADDINGS)}, got "
                                    f"{padding!r}")
        self.model = model
        self.modules = resolve_layers(model, layers)
        self.names = list(self.modules)
        self._names = tuple(self.names)
        self.head = head
        self.padding = padding
        hooked = dict(self.modules)
        if head is not None:
            hooked |= resolve_layers(model, [head.layer])
        self._feats: dict[str, np.ndarray] = {}
        self._valid: dict[int, np.ndarray] = {}  # a batch's valid frames by a layer's frames
        self._param = next(model.parameters(), None)  # where the model runs
        # When to pool: a batch's outputs are pooled as each layer returns, while the output
        # is in the caches, and not kept (holding them all to the end of the forward pass
        # kept torch's allocator from reusing their memory: 0.4 to 0.8 ms a batch of 16 on the
        # bench's conv model). A lone input's are small and kept to the end of the pass, then
        # pooled in a row: the serving guard's Python then runs once with warm caches instead
        # of once per layer with the caches cold from the layer's compute (about 100 us a
        # request on the bench's conv model, 5 layers). That is sound only while no later
        # operation changes a kept output in place (a ReLU(inplace=True), a ``+=``): its
        # version counter says so, and then the pass is run again, pooling as each layer
        # returns from then on (``_defer``).
        self._defer = True
        self._deferring = False
        # the taps act only in a pass of the capture's: the model called outside one (the
        # user's own batch, with the capture attached) is none of theirs
        self._passing = False
        self._pending: list[tuple[Any, torch.Tensor, int]] = []
        self._batch: tuple[torch.Tensor | None, int, int] = (None, 0, 0)
        self._taps = [Tap(module, self._on_output(name, module))
                      for name, module in hooked.items()]

    def _on_output(self, name: str, module: nn.Module):
        take, pending = self._take(name, module), self._pending
        # where ``Kept`` puts this output: its layer's place, the head's after them, or both
        slots = tuple([self.names.index(name)] if name in self.modules else []) + \
            ((len(self.names),) if self.head is not None and name == self.head.layer else ())
        where = (take, slots, channel_dim(module))

        def seen(output: Any) -> None:
            if self._deferring:  # a plain tensor as it is (``_kept`` and the pooling check it)
                tensor = output if type(output) is torch.Tensor else output_tensor(output)
                if tensor is not None:
                    pending.append((where, tensor, tensor._version))
            elif self._passing and (tensor := output_tensor(output)) is not None:
                take(tensor)

        return seen

    def _take(self, name: str, module: nn.Module):
        """What a tap does with one output of ``module``: pools it (a watched layer) and
        scores it (the output head) into the batch's features."""
        dim, feats, head, valid = channel_dim(module), self._feats, self.head, self._valid
        layer = name in self.modules
        logits = head is not None and name == head.layer

        def take(tensor: torch.Tensor) -> None:
            lengths, t_input, rows = self._batch
            x = as_batch_time_channels(_as_array(tensor), dim)
            if x.shape[0] != rows:
                raise _not_batch_first(name, x.shape[0], rows)
            frames = valid.get(x.shape[1])  # layers of the same frame rate share them
            if frames is None:
                frames = valid[x.shape[1]] = _valid(rows, x.shape[1], lengths, t_input)
            if layer:  # a module called twice keeps its last output's features
                feats[name] = kernel.pool(x, frames)
            if logits:
                feats[OUTPUT_KEY] = kernel.output_scores(x, frames,
                                                         check_blank(head.blank, x.shape[2]))

        return take

    def _kept(self) -> Kept | None:
        """The pass's kept outputs as ``Kept``, or None when one is not a float32 CPU
        (batch, time, channels) or (batch, channels) tensor (one laid out otherwise in memory
        is copied)."""
        held: list[Any] = [None] * (len(self.names) + (self.head is not None))
        places: list[Any] = [None] * len(held)
        rows = self._batch[2]
        for (_, at, dim), tensor, _ in self._pending:
            if tensor.dtype is not torch.float32 or not tensor.is_cpu:
                return None
            owner, place = tensor, _place(tensor, dim)
            if place is None:
                if tensor.ndim not in (2, 3) or 0 in tensor.shape:
                    return None
                owner, inner = kernel.in_order(as_batch_time_channels(tensor.numpy(), dim))
                place = _array_place(owner, inner)
            if place[1] != rows:  # not batch-first: the pooling's way refuses it by name
                return None
            for slot in at:
                held[slot], places[slot] = owner, place
        if not all(map(operator.is_not, held, itertools.repeat(None))):  # (no frames)
            return None
        return Kept(self._names, self.head, tuple(held), tuple(places))

    def __enter__(self) -> FeatureCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        for tap in self._taps:
            tap.remove()
        self._taps.clear()

    def capture(self, batch: Batch) -> dict[str, np.ndarray]:
        x, lengths, shortest = _split(batch)
        if lengths is None or self.padding == "batch" or shortest == x.shape[1]:
            return self._run(x, lengths, shortest)[1]
        out: dict[str, np.ndarray] = {}
        for length in torch.unique(lengths).tolist():
            rows = (lengths == length).nonzero().squeeze(1)
            part = self._run(x[rows, :length], lengths[rows], length)[1]
            for name, values in part.items():
                if name not in out:
                    out[name] = np.empty((len(x), values.shape[1]), values.dtype)
                out[name][rows.numpy()] = values
        return out

    def forward(self, batch: Batch, kept: bool = False
                ) -> tuple[Any, dict[str, np.ndarray] | Kept]:
        """The model's output for ``batch`` run as given (``padding="batch"``) and the
        features of that same forward pass. With ``kept``, a lone input's outputs come back
        unpooled when they can (``Kept``: the serving guard pools and scores them in one
        compiled call)."""
        if self.padding != "batch":
            raise InvalidInputError('forward() runs a batch as given: padding="batch"')
        return self._run(*_split(batch), kept=kept)

    def _run(self, x: torch.Tensor, lengths: torch.Tensor | None, shortest: int,
             kept: bool = False) -> tuple[Any, dict[str, np.ndarray] | Kept]:
        """One forward pass of ``x`` (inputs of ``lengths``, the shortest ``shortest``
        frames) and the features of its watched layers, or with ``kept`` a lone unpadded
        input's outputs unpooled where they can be."""
        if torch.is_grad_enabled():
            with torch.no_grad():
                return self._run(x, lengths, shortest, kept)
        param = self._param
        self._feats.clear()
        self._valid.clear()
        padded = None if lengths is None or shortest == x.shape[1] else lengths
        self._batch = (padded, x.shape[1], x.shape[0])
        # version counters: none in inference mode; a second pass: not in training mode
        self._deferring = (self._defer and x.shape[0] == 1 and not self.model.training
                           and not torch.is_inference_mode_enabled())
        self._passing = True
        try:
            # (on the CPU, no .to(): a call that does nothing there costs microseconds)
            if param is not None and not (param.is_cpu and x.is_cpu):
                x = x.to(param.device)
                lengths = None if lengths is None else lengths.to(param.device)
            output = self.model(x) if lengths is None else self.model(x, lengths)
            if self._pending:
                for _, tensor, version in self._pending:
                    if tensor._version != version:  # changed after its layer returned it
                        self._defer = False
                        self._pending.clear()
                        return self._run(x, lengths, shortest, kept)
                if kept and padded is None and (got := self._kept()) is not None:
                    return output, got
                for (take, _, _), tensor, _ in self._pending:
                    if tensor.is_floating_point():  # (the taps keep any plain tensor)
                        take(tensor)
            feats = dict(self._feats)
        finally:
            self._feats.clear()
            self._pending.clear()
            self._deferring = self._passing = False
        wanted = self.names + ([OUTPUT_KEY] if self.head is not None else [])
        missing = [n for n in wanted if n not in feats]
        if missing:
            names = [self.head.layer if n == OUTPUT_KEY else n for n in missing]
            raise InvalidInputError(f"layers {', '.join(map(repr, names))} produced no "
                                    f"floating-point tensor in the forward pass; probe other "
                                    f"layers")
        return output, {name: feats[name] for name in wanted}


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
