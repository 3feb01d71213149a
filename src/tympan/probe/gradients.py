"""Parameter-gradient L2 norms per layer, for the gradient health rules and the logged
``grad_norm``: one fused norm over every gradient, read with the step's other scalars."""

from __future__ import annotations

import torch
from torch import nn

_F64 = torch.float64


class GradientNorms:
    """The norms of the parameter gradients of each of ``modules`` (name -> module)."""

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        self.modules = modules
        # Fixed at the first read: layer names, their parameters, each parameter's layer.
        self._params: tuple[list[str], list[nn.Parameter], list[int]] | None = None
        self._segments: torch.Tensor | None = None

    def read(self, order: list[str]) -> tuple[list[str], torch.Tensor | None]:
        """Norm per layer in backward order (the reverse of ``order``, forward order, or of
        ``modules`` when empty), as one device tensor (float64)."""
        if self._params is None:
            names, params, owner = [], [], []
            for name in reversed(order or list(self.modules)):
                own = [p for p in self.modules[name].parameters() if p.requires_grad]
                if own:
                    names.append(name)
                    params += own
                    owner += [len(names) - 1] * len(own)
            self._params = (names, params, owner)
        names, params, owner = self._params
        present = [i for i, p in enumerate(params) if p.grad is not None]
        if not present:
            return [], None
        grads = [params[i].grad.detach() for i in present]  # type: ignore[union-attr]
        norms = torch.stack(torch._foreach_norm(grads))  # one device: see Probe._read
        squares = norms.to(_F64)
        squares = squares * squares
        groups = sorted({owner[i] for i in present})
        if len(present) == len(params):
            seg = self._segments_on(grads[0].device, owner)
        else:
            where = {g: k for k, g in enumerate(groups)}
            seg = torch.tensor([where[owner[i]] for i in present], device=grads[0].device)
        norms = torch.zeros(len(groups), dtype=_F64, device=grads[0].device)
        return [names[g] for g in groups], norms.index_add_(0, seg, squares).sqrt_()

    def exact(self, name: str) -> float:
        """One layer's norm in float64 (where the float32 one overflowed or is not finite)."""
        grads = [p.grad.detach().to(_F64) for p in self.modules[name].parameters()
                 if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads])))

    def _segments_on(self, device: torch.device, owner: list[int]) -> torch.Tensor:
        if self._segments is None or self._segments.device != device:
            self._segments = torch.tensor(owner, device=device)
        return self._segments
