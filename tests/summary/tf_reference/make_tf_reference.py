"""Records what TensorFlow's own summary kernels output, for test_summary_tf_reference.py.

Not run by the tests. Run it with TensorFlow installed (in a separate venv:
`pip install tensorflow-cpu`) from this folder:

    python make_tf_reference.py

It writes tf_summary_reference.npz: for each case, the kernel's inputs
(`<case>.input`), its serialized Summary output (`<case>.output`, as uint8) and
a JSON manifest naming the kernel and its attributes. No pickles.
"""

import json

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()


def make_cases(rng):
    cases = []

    def add(kind, name, value, **attrs):
        cases.append((kind, name, np.asarray(value), attrs))

    add("histogram", "h_normal", rng.normal(size=1000) * 3)
    add("histogram", "h_tiny_f32", (rng.normal(size=(7, 9)) * 1e-8).astype(np.float32))
    add("histogram", "h_wide", rng.normal(size=50) * 10.0 ** rng.integers(-15, 25, 50))
    add("histogram", "h_int32", rng.integers(-100, 100, 300).astype(np.int32))
    add("histogram", "h_empty", np.zeros(0, np.float32))
    add("histogram", "h_edges", [0.0, -0.0, 1e-12, -1e-12, 1.1e-12])
    add("histogram", "h_sum_order", [1e16, 1.0, -1e16, 1.0] * 50 + [0.1] * 1000)
    add("histogram", "h_half", rng.normal(size=100).astype(np.float16))
    add("scalar", "s_f64", np.float64(0.1))
    add("scalar", "s_i64", np.int64(7))
    add("scalar", "s_f32", np.float32(-3.25))
    images = {
        "i_rgb": rng.integers(0, 256, (2, 5, 7, 3)).astype(np.uint8),
        "i_gray": rng.integers(0, 256, (4, 6, 3, 1)).astype(np.uint8),
        "i_rgba": rng.integers(0, 256, (1, 3, 3, 4)).astype(np.uint8),
        "i_f32": rng.random((2, 6, 5, 3)).astype(np.float32),
        "i_f32_signed": rng.normal(size=(2, 4, 4, 1)).astype(np.float32),
        "i_f64_dim": rng.random((1, 4, 4, 3)) * 0.3,
        "i_f16": rng.normal(size=(1, 4, 4, 3)).astype(np.float16),
        "i_nan": np.where(rng.random((1, 5, 5, 3)) < 0.2, np.nan,
                          rng.random((1, 5, 5, 3))).astype(np.float32),
        "i_black": np.zeros((1, 2, 2, 3), np.float32),
        "i_big": rng.integers(0, 256, (1, 64, 80, 3)).astype(np.uint8),  # > one IDAT
    }
    for name, value in images.items():
        for max_outputs in (1, 3):
            add("image", "%s_%d" % (name, max_outputs), value, max_outputs=max_outputs)
    stereo = rng.uniform(-1.2, 1.2, (2, 50, 2)).astype(np.float32)
    stereo[0, :4, 0] = [0.5 / 32768, -0.5 / 32768, 1.5 / 32768, -1.5 / 32768]
    add("audio", "a_stereo", stereo, sample_rate=16000.5, max_outputs=3)
    add("audio", "a_mono", rng.uniform(-1, 1, (3, 20)).astype(np.float32),
        sample_rate=22050.0, max_outputs=1)
    add("tensor", "t_f32", np.arange(6, dtype=np.float32).reshape(2, 3))
    add("tensor", "t_i64", np.array([-1, 2 ** 40]))
    add("tensor", "t_bool", np.array([True, False]))
    add("tensor", "t_str", np.array([[b"a", b"bc"]]))
    add("tensor", "t_scalar", np.float64(2.5))
    add("text", "notes", np.array("hello **world**"))
    return cases


def summary_op(kind, name, value, attrs):
    ops = tf.raw_ops
    if kind == "histogram":
        return ops.HistogramSummary(tag=name, values=value)
    if kind == "scalar":
        return ops.ScalarSummary(tags=name, values=value)
    if kind == "image":
        return ops.ImageSummary(tag=name, tensor=value, max_images=attrs["max_outputs"])
    if kind == "audio":
        return ops.AudioSummaryV2(tag=name, tensor=value, sample_rate=attrs["sample_rate"],
                                  max_outputs=attrs["max_outputs"])
    if kind == "tensor":
        return ops.TensorSummaryV2(tag=name, tensor=value, serialized_summary_metadata=b"")
    if kind == "text":
        return tf.compat.v1.summary.text(name, tf.constant(value))
    raise ValueError(kind)


def main():
    cases = make_cases(np.random.default_rng(0))
    arrays, manifest = {}, []
    with tf.Graph().as_default():
        fetches = [summary_op(kind, name, value, attrs) for kind, name, value, attrs in cases]
        merged = tf.compat.v1.summary.merge(
            [fetches[0], fetches[8], fetches[-1]])  # histogram, scalar, text
        with tf.compat.v1.Session() as session:
            outputs = session.run(fetches + [merged])
    for (kind, name, value, attrs), output in zip(cases, outputs[:-1], strict=True):
        arrays[name + ".input"] = value
        arrays[name + ".output"] = np.frombuffer(output, np.uint8)
        manifest.append({"kind": kind, "name": name, "attrs": attrs})
    arrays["merge.output"] = np.frombuffer(outputs[-1], np.uint8)
    manifest.append({"kind": "merge", "name": "merge",
                     "attrs": {"inputs": [cases[0][1], cases[8][1], cases[-1][1]]}})
    arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    np.savez_compressed("tf_summary_reference.npz", **arrays)
    print("wrote %d cases with TensorFlow %s" % (len(manifest), tf.__version__))


if __name__ == "__main__":
    main()
