"""Images: check what the caller logs in the caller's thread, store it as PNG.

Accepted: numpy arrays and torch tensors shaped ``(H, W)``, ``(H, W, C)`` or, as torch lays
images out, ``(C, H, W)``, with C = 1 (grey), 3 (RGB) or 4 (RGBA); PIL images; matplotlib
figures (or an Axes, for its figure). Arrays are copied at the call and encoded later by the
writer thread; a figure is rendered at the call, since matplotlib is not thread-safe and the
caller may draw on it again right after.

Pixel values: ``uint8`` as they are, ``bool`` as black and white, other integers in 0..255 as
8-bit values. Floats in [0, 1] are scaled to 0..255; floats outside that range (a log-mel
spectrogram in dB, attention logits) are mapped linearly from their own min..max, and that
range is kept with the image (``scaled_from``), as loud audio keeps its gain: nothing is
clipped. NaN or Inf pixels are refused.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from tympan.audio.arrays import from_tensor
from tympan.errors import ImageError

CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # PNG's grey, grey+alpha, RGB, RGBA
_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
_PIL_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}  # PIL writes these as PNG
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to store: pixels to encode, or PNG bytes already encoded."""

    width: int
    height: int
    mode: str
    pixels: np.ndarray | None = None  # (H, W, C) uint8, encoded by the writer thread
    encoded: bytes | None = None
    scaled_from: tuple[float, float] | None = None

    def png(self) -> bytes:
        if self.encoded is not None:
            return self.encoded
        assert self.pixels is not None
        return png(self.pixels)

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"width": self.width, "height": self.height, "mode": self.mode}
        if self.scaled_from is not None:
            out["scaled_from"] = list(self.scaled_from)
        return out


def prepare(key: str, image: Any) -> PreparedImage:
    """Check ``image`` and copy (or, for a figure, render) it now."""
    if _is_pil(image):
        return _from_pil(key, image)
    figure = _figure_of(image)
    if figure is not None:
        buf = io.BytesIO()
        figure.savefig(buf, format="png")
        data = buf.getvalue()
        width, height, mode = png_size(data)
        return PreparedImage(width, height, mode, encoded=data)
    return _from_array(key, image)


def _is_pil(image: Any) -> bool:
    return type(image).__module__.startswith("PIL.") and hasattr(image, "mode")


def _figure_of(image: Any) -> Any:
    if hasattr(image, "savefig") and hasattr(image, "canvas"):  # a matplotlib Figure
        return image
    figure = getattr(image, "figure", None)  # an Axes
    if figure is not None and hasattr(figure, "savefig") and hasattr(image, "plot"):
        return figure
    return None


def _from_pil(key: str, image: Any) -> PreparedImage:
    if image.mode in ("F", "I", "I;16B", "I;16L"):  # 32-bit float or int pixels
        return _from_array(key, np.asarray(image))
    if image.mode not in _PIL_PNG_MODES:  # CMYK, YCbCr, LAB, HSV, ...
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG")  # copies the pixels now: the caller may draw on it after
    width, height = image.size
    return PreparedImage(width, height, image.mode, encoded=buf.getvalue())


def _from_array(key: str, image: Any) -> PreparedImage:
    image = from_tensor(image)
    try:
        array = np.array(image, copy=True)  # a copy: the caller may reuse its buffer
    except (TypeError, ValueError) as exc:
        raise ImageError(f"image {key!r} is not an array of pixels: {exc}") from None
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise ImageError(
            f"image {key!r}: expected a numpy array, torch tensor, PIL image or matplotlib "
            f"figure, got {type(image).__name__}"
            + (f" of dtype {array.dtype}" if array.dtype != object else "")
        )
    array = _height_width_channels(key, array)
    if array.size == 0:
        raise ImageError(f"image {key!r} is empty (shape {array.shape})")
    pixels, scaled_from = _to_uint8(key, array)
    height, width, channels = pixels.shape
    return PreparedImage(width, height, CHANNELS[channels], pixels=pixels,
                         scaled_from=scaled_from)


def _height_width_channels(key: str, array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim == 3:
        if array.shape[2] in CHANNELS:
            return array
        if array.shape[0] in CHANNELS:  # (C, H, W), torch's layout
            return np.ascontiguousarray(array.transpose(1, 2, 0))
    hint = "; log a batch one image at a time" if array.ndim == 4 else ""
    raise ImageError(
        f"image {key!r} has shape {array.shape}: expected (H, W), (H, W, C) or (C, H, W) "
        f"with C = 1, 3 or 4 (grey, RGB, RGBA){hint}"
    )


def _to_uint8(key: str, array: np.ndarray) -> tuple[np.ndarray, tuple[float, float] | None]:
    if array.dtype == np.uint8:
        return array, None
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255, None
    if array.dtype.kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low >= 0 and high <= 255:
            return array.astype(np.uint8), None
        array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0][:2])
        raise ImageError(f"image {key!r} has NaN or Inf pixels (first at row, column {where})")
    low, high = float(array.min()), float(array.max())
    if low >= 0.0 and high <= 1.0 and array.dtype.kind == "f":
        return np.rint(array * 255.0).astype(np.uint8), None
    span = high - low
    scaled = (array - low) / span if span > 0 else np.zeros_like(array, dtype=np.float64)
    return np.rint(scaled * 255.0).astype(np.uint8), (low, high)


def png(pixels: np.ndarray) -> bytes:
    """An 8-bit PNG of an ``(H, W)`` or ``(H, W, C)`` uint8 array, C = 1 to 4."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, channels = pixels.shape
    rows = np.zeros((height, 1 + width * channels), dtype=np.uint8)  # filter byte 0 per row
    rows[:, 1:] = pixels.reshape(height, width * channels)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPE[channels], 0, 0, 0)
    return (PNG_SIGNATURE + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


def png_size(data: bytes) -> tuple[int, int, str]:
    """(width, height, mode) from a PNG's header; ImageError if ``data`` is not a PNG."""
    if len(data) < 33 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ImageError("the image is not a PNG file")
    width, height, _depth, colour = struct.unpack(">IIBB", data[16:26])
    if width == 0 or height == 0 or colour not in _MODES:
        raise ImageError("the image's PNG header is malformed")
    return width, height, _MODES[colour]
