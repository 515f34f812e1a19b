"""A minimal PNG encoder (8-bit gray, gray+alpha, RGB, RGBA) built on zlib.

Writes what libpng writes with its defaults, which is what TF's PNG encoder
uses: a filter per row by the smallest sum of filtered bytes read as signed,
zlib's Z_FILTERED strategy with the window shrunk to the image, and IDAT
chunks of 8192 bytes. With the same zlib, files are byte-identical to TF's.
"""

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type for each channel count.
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
# libpng's default compression buffer, hence its IDAT chunk size.
_IDAT_SIZE = 8192


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _paeth(left, up, upleft):
    estimate = left + up - upleft
    dist_left = np.abs(estimate - left)
    dist_up = np.abs(estimate - up)
    dist_upleft = np.abs(estimate - upleft)
    return np.where((dist_left <= dist_up) & (dist_left <= dist_upleft), left,
                    np.where(dist_up <= dist_upleft, up, upleft))


def _filtered_rows(rows, bpp):
    """All five PNG filters applied to every row: shape (5, height, row_bytes)."""
    x = rows.astype(np.int16)
    up = np.zeros_like(x)
    up[1:] = x[:-1]
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    upleft = np.zeros_like(x)
    upleft[:, bpp:] = up[:, :-bpp]
    predictions = (np.zeros_like(x), left, up, (left + up) // 2,
                   _paeth(left, up, upleft))
    return np.stack([(x - p) & 0xFF for p in predictions]).astype(np.uint8)


def _zlib_stream(data, level):
    """Deflates `data` with the window size and header libpng would choose."""
    size = len(data)
    window_bits = 15
    if size <= 16384:
        # libpng's png_deflate_claim: the smallest window that still covers
        # the data plus zlib's 262-byte lookahead.
        half_window = 1 << (window_bits - 1)
        while size + 262 <= half_window:
            half_window >>= 1
            window_bits -= 1
    compressor = zlib.compressobj(level, zlib.DEFLATED, window_bits, 8, zlib.Z_FILTERED)
    stream = bytearray(compressor.compress(data) + compressor.flush())
    if size <= 16384:
        # libpng's optimize_cmf: the header then claims the smallest window
        # holding the data (without the lookahead), with its check bits redone.
        cmf = stream[0]
        info = cmf >> 4
        half_window = 1 << (info + 7)
        if (cmf & 0x0F) == 8 and info <= 7 and size <= half_window:
            while True:
                half_window >>= 1
                info -= 1
                if not (info > 0 and size <= half_window):
                    break
            cmf = (cmf & 0x0F) | (info << 4)
            flags = stream[1] & 0xE0
            flags += 0x1F - ((cmf << 8) + flags) % 0x1F
            stream[0], stream[1] = cmf, flags
    return bytes(stream)


def encode_png(image, compression=-1):
    """Encodes an `(height, width, channels)` uint8 array as PNG bytes.

    `channels` is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA);
    `compression` is a zlib level, -1 for zlib's default as TF uses.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError("encode_png takes uint8 pixels, got %s" % image.dtype)
    if image.ndim != 3 or image.shape[2] not in _COLOR_TYPE:
        raise ValueError(
            "encode_png takes (height, width, 1|2|3|4), got shape %s" % (image.shape,))
    height, width, channels = image.shape
    if height == 0 or width == 0:
        raise ValueError("PNG images must have non-zero height and width")
    rows = np.ascontiguousarray(image).reshape(height, width * channels)
    candidates = _filtered_rows(rows, bpp=channels)
    signed_cost = np.minimum(candidates, 256 - candidates.astype(np.int32))
    best = np.argmin(signed_cost.sum(axis=2, dtype=np.int64), axis=0)
    chosen = candidates[best, np.arange(height)]
    scanlines = np.concatenate(
        [best.astype(np.uint8)[:, None], chosen], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPE[channels], 0, 0, 0)
    stream = _zlib_stream(scanlines, compression)
    idat = [_chunk(b"IDAT", stream[start:start + _IDAT_SIZE])
            for start in range(0, len(stream), _IDAT_SIZE)]
    return b"".join([_SIGNATURE, _chunk(b"IHDR", header), *idat, _chunk(b"IEND", b"")])
