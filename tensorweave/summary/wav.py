"""16-bit PCM WAV encoding as TF's `wav::EncodeAudioAsS16LEWav`."""

import struct

import numpy as np


def encode_wav(samples, sample_rate):
    """Encodes float `samples` of shape `(frames, channels)` as a 16-bit WAV file.

    Samples are scaled by 32768, rounded half away from zero and clipped to the
    int16 range, as TF does; `sample_rate` is an integer number of frames per second.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 2:
        raise ValueError("encode_wav takes (frames, channels), got %s" % (samples.shape,))
    frames, channels = samples.shape
    # The float32 product is exact in float64, where adding 0.5 is exact too:
    # this is roundf (halves away from zero), which np.round (to even) is not.
    scaled = (samples * np.float32(1 << 15)).astype(np.float64)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    # NaN has no defined result in TF; write silence.
    rounded = np.nan_to_num(rounded, nan=0.0)
    pcm = np.clip(rounded, -32768, 32767).astype("<i2")
    data = pcm.tobytes()
    block_align = channels * 2
    fmt = struct.pack("<HHIIHH", 1, channels, sample_rate,
                      sample_rate * block_align, block_align, 16)
    return b"".join([
        b"RIFF", struct.pack("<I", 36 + len(data)), b"WAVE",
        b"fmt ", struct.pack("<I", len(fmt)), fmt,
        b"data", struct.pack("<I", len(data)), data,
    ])
