"""The ONNX runtime of ``tympan serve --runtime onnx``: the version's export
(``tympan model export``, ``registry/export.py``) run by onnxruntime on the CPU.

The exported graph returns the model's outputs followed by the outputs of the guard's layers,
so the guard scores the same layers as under torch, pooled by the probe's own pooling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tympan.errors import InvalidInputError, NotFoundError


class OnnxModel:
    def __init__(self, data: bytes, outputs: int, layers: list[str], run_id: str) -> None:
        from tympan.registry.export import session

        self.session = session(data)  # as many threads as torch (tympan serve --threads)
        self.outputs = outputs
        self.layers = layers
        self.run_id = run_id

    @classmethod
    def for_version(cls, version: Any, guard: Any, *, store: str | None = None) -> OnnxModel:
        import tympan
        from tympan.registry.export import ONNX_ARTIFACT, REPORT_KIND, REPORT_NAME

        report = next((r for r in version.reports
                       if r.get("kind") == REPORT_KIND and r.get("name") == REPORT_NAME), None)
        if report is None:
            raise NotFoundError(f"{version.uri} has no ONNX export yet: run `tympan model "
                                f"export {version.uri} --format onnx` first")
        data = report["data"]
        layers = [n for n in (data.get("guard_layers") or "").split(",") if n]
        if guard is not None and layers != guard.watched:
            raise InvalidInputError(
                f"{version.uri}'s ONNX export carries the layers {layers or 'none'}, but the "
                f"guard's profile watches {guard.watched}: export again (`tympan model export "
                f"{version.uri}`) after `tympan probe fit`, or serve with --guard off")
        record = tympan.load_run(data["run"], store=store)
        return cls(record.read_artifact(ONNX_ARTIFACT), int(data["outputs"]), layers,
                   record.id)

    def run(self, inputs: tuple[Any, ...], guard: Any = None
            ) -> tuple[Any, dict[str, np.ndarray] | None]:
        """The model's outputs (as torch tensors, what the recipe's answer takes) and, with
        ``guard``, the pooled features of its layers."""
        import torch

        from tympan.registry.export import run_session

        got = run_session(self.session, inputs)
        outs = [torch.from_numpy(g) for g in got[:self.outputs]]
        outputs = outs[0] if len(outs) == 1 else tuple(outs)
        if guard is None:
            return outputs, None
        x, lengths = inputs
        layer_outputs = dict(zip(self.layers, got[self.outputs:], strict=True))
        return outputs, guard.pool(layer_outputs, lengths, x.shape[1])
