"""Every layer's detector distance of a batch of pooled features, in as few numpy calls as
the profile allows.

The serving guard scores each request on its own (a batch of one), where the cost is the
number of numpy calls, not their arithmetic: one layer's Mahalanobis distance took a dozen
calls, five layers about 60, which cost more than the small model they guard. Layers whose
detector is a Mahalanobis distance on mean+std features and whose features have the same
width (an encoder's blocks) are scored together: their features stacked, standardized in one
step and multiplied by their stacked precision matrices in one ``np.matmul`` (the same BLAS
product per layer as ``Mahalanobis.distance``, so the distances are bitwise the same). Other
layers (k-NN, mean pooling) and any batch with a non-finite feature take each layer's own
``LayerProfile.distance``.

What the product costs is reading the precision matrices: four 320 x 320 float64 matrices are
3.3 MB, which the model's own forward pass has pushed out of the caches by the time the guard
scores (measured: 220 us to multiply one request by them, 45 us when they are cached). A
profile fitted on fewer inputs than a layer has features (30 clips, 320 features) has a
shrunk covariance ``a I + U D U^T`` of rank ``n_fit - 1`` above the ``a I`` floor, so its
precision is ``c I + V diag(e) V^T`` with as few columns: ``z P z = c |z|^2 + |(z V) e^1/2|^2``
reads 29 columns instead of 320. The form is found from the stored precision (its
eigenvalues: the bulk ``c`` and the rest), checked to rebuild it to 1e-9 of its largest
entry, and used only where it has at most a quarter of the columns; the distances agree
with the dense product to about 1e-12 relative (the spread of the bulk eigenvalues).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tympan.probe.detectors import Mahalanobis


class Distances:
    """``distances(feats)``: {layer: (n, dims)} features -> (n, layers) distances, in the
    order of ``layers`` (``LayerProfile``s)."""

    def __init__(self, layers: Sequence[Any]) -> None:
        self.layers = list(layers)
        by_width: dict[int, list[int]] = {}
        for i, lay in enumerate(self.layers):
            if isinstance(lay.detector, Mahalanobis) and lay.pooling == "mean+std":
                by_width.setdefault(lay.dims, []).append(i)
        # (column indices, layer names, (G, 1, d) mean and scale, product): the product is
        # ("dense", (G, d, d) precisions) or ("low rank", (G, 1) c, (G, d, r) V, (G, 1, r) e)
        self._stacks: list[tuple[Any, ...]] = []
        for rows in by_width.values():
            dets = [self.layers[i].detector for i in rows]
            forms = [low_rank(d.precision) for d in dets]
            if all(f is not None for f in forms):
                r = max(f[1].shape[1] for f in forms)
                product: tuple[Any, ...] = (
                    "low rank", np.array([[f[0]] for f in forms]),
                    np.stack([np.pad(f[1], ((0, 0), (0, r - f[1].shape[1]))) for f in forms]),
                    np.stack([np.pad(f[2], (0, r - len(f[2]))) for f in forms])[:, None, :])
            else:
                product = ("dense", np.stack([d.precision for d in dets]))
            self._stacks.append((np.array(rows), [self.layers[i].name for i in rows],
                                 np.stack([d.mean for d in dets])[:, None, :],
                                 np.stack([d.scale for d in dets])[:, None, :], product))
        stacked = {i for rows in by_width.values() for i in rows}
        self._alone = [i for i in range(len(self.layers)) if i not in stacked]

    def __call__(self, feats: Mapping[str, np.ndarray]) -> np.ndarray:
        n = len(feats[self.layers[0].name])
        out = np.empty((n, len(self.layers)))
        for cols, names, mean, scale, product in self._stacks:
            x = np.stack([feats[name] for name in names])  # (G, n, d)
            if not np.isfinite(x.sum()):  # the per-layer path marks non-finite inputs inf
                for i in cols:
                    lay = self.layers[i]
                    out[:, i] = lay.distance(feats[lay.name])
                continue
            z = (x - mean) / scale
            if product[0] == "dense":
                q = (np.matmul(z, product[1]) * z).sum(-1)  # (G, n)
            else:
                _, c, v, e = product
                zv = np.matmul(z, v)
                q = c * (z * z).sum(-1) + (zv * zv * e).sum(-1)
            out[:, cols] = np.sqrt(np.maximum(q, 0.0)).T
        for i in self._alone:
            lay = self.layers[i]
            out[:, i] = lay.distance(feats[lay.name])
        return out


def low_rank(precision: np.ndarray, tol: float = 1e-9
             ) -> tuple[float, np.ndarray, np.ndarray] | None:
    """``(c, V, e)`` with ``precision == c I + V diag(e) V^T`` (to ``tol`` of its largest
    entry) and at most a quarter as many columns in ``V`` as rows; else None."""
    w, vecs = np.linalg.eigh(precision)
    c = float(np.median(w))
    scale = float(np.abs(w).max())
    keep = np.abs(w - c) > tol * scale
    if keep.sum() > len(w) // 4:
        return None
    v, e = vecs[:, keep], w[keep] - c
    rebuilt = c * np.eye(len(w)) + (v * e) @ v.T
    if np.abs(rebuilt - precision).max() > tol * float(np.abs(precision).max()):
        return None
    return c, v, e
