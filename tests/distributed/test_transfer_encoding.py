"""`ConfigProto(transfer_encoding=...)` of a client session picks the encoding of float32 tensors
crossing tasks: a PS task and a worker task train the linear model of test_server.py; "none"
matches one process exactly, the lossy encodings stay within their error, and the payload bytes
received per step (RunMetadata.step_stats of a FULL_TRACE step) shrink to a half or a quarter."""

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed import tensor_codec
from tensorweave.distributed.cluster import ClusterSpec, free_ports

XV = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
YV = np.random.default_rng(2).standard_normal((6, 1)).astype(np.float32)
STEP_MS = 30_000
STEPS = 3
# Relative error bound per encoding, loose enough for three steps of accumulated rounding.
TOLERANCE = {"none": 0.0, "bfloat16_truncate": 3e-2, "bfloat16": 2e-2, "float16": 3e-3, "int8": 3e-2}
RATIO = {"none": 1.0, "bfloat16_truncate": 0.5, "bfloat16": 0.5, "float16": 0.5, "int8": 0.25}


def _linear_model(device_fn):
    rng = np.random.default_rng(0)
    with tf.device(device_fn):
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        y = tf.placeholder(tf.float32, [None, 1], name="y")
        w = tf.Variable(rng.standard_normal((4, 1)).astype(np.float32), name="w")
        b = tf.Variable(np.zeros(1, np.float32), name="b")
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y), name="loss")
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss, name="train")
    return w, b, loss, train


def _single_process():
    with tf.Graph().as_default():
        w, b, loss, train = _linear_model(None)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            losses = [sess.run([loss, train], {"x:0": XV, "y:0": YV})[0] for _ in range(STEPS)]
            return losses, sess.run([w, b])


def _train(cluster, target, encoding):
    """(losses, [w, b], [step_stats of each training step])."""
    with tf.Graph().as_default() as g:
        w, b, loss, train = _linear_model(tf.train.replica_device_setter(cluster=cluster))
        init = tf.global_variables_initializer()
    config = tf.ConfigProto(operation_timeout_in_ms=STEP_MS, transfer_encoding=encoding)
    losses, stats = [], []
    with tf.Session(target, graph=g, config=config) as sess:
        sess.run(init)
        for _ in range(STEPS):
            metadata = tf.RunMetadata()
            losses.append(sess.run([loss, train], {"x:0": XV, "y:0": YV},
                                   options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                                   run_metadata=metadata)[0])
            stats.append(metadata.step_stats)
        weights = sess.run([w, b])  # untraced: no step_stats asked for, none returned
    return losses, weights, stats


@pytest.fixture(scope="module")
def cluster_servers():
    ps, worker = free_ports(2)
    cluster = ClusterSpec({"ps": [f"127.0.0.1:{ps}"], "worker": [f"127.0.0.1:{worker}"]})
    config = tf.ConfigProto(operation_timeout_in_ms=STEP_MS)
    servers = []
    try:
        servers.append(tf.train.Server(cluster, "ps", 0, config=config))
        servers.append(tf.train.Server(cluster, "worker", 0, config=config))
        yield cluster, servers
    finally:
        for s in servers:
            s.stop()


@pytest.fixture(scope="module")
def runs(cluster_servers):
    cluster, servers = cluster_servers
    # Each run starts from the variables' initial values (the init op runs in every session).
    return {enc: _train(cluster, servers[1].target, enc) for enc in RATIO}


def _received(step_stats):
    return sum(tensor_codec.transfer_bytes(step_stats, "_recv").values())


@pytest.mark.parametrize("encoding", list(RATIO))
def test_training_matches_one_process_within_the_encodings_error(runs, encoding):
    expected_losses, expected_weights = _single_process()
    losses, weights, _ = runs[encoding]
    for got, want in zip([*losses, *weights], [*expected_losses, *expected_weights], strict=True):
        got, want = np.asarray(got), np.asarray(want)
        if encoding == "none":
            np.testing.assert_array_equal(got, want)
        else:
            scale = max(1.0, float(np.max(np.abs(want))))
            np.testing.assert_allclose(got, want, rtol=TOLERANCE[encoding], atol=TOLERANCE[encoding] * scale)
    assert losses[0] != losses[-1]


def test_lossy_encodings_change_the_values(runs):
    none_weights = runs["none"][1]
    for encoding in ("bfloat16_truncate", "bfloat16", "float16", "int8"):
        assert any(not np.array_equal(a, e) for a, e in zip(runs[encoding][1], none_weights, strict=True)), encoding


def _per_tensor(step_stats):
    """{tensor name: (payload bytes, encoding)} of the tensors received in a step."""
    out = {}
    for d in step_stats.dev_stats:
        for n in d.node_stats:
            if n.node_name.startswith("_recv/"):
                alloc = n.output[0].tensor_description.allocation_description
                out[n.node_name] = (alloc.requested_bytes, alloc.allocator_name.removeprefix("wire:"))
    return out


@pytest.mark.parametrize("encoding", list(RATIO))
def test_bytes_received_per_step_shrink_with_the_encoding(runs, encoding):
    for base_stats, stats in zip(runs["none"][2], runs[encoding][2], strict=True):
        base, got = _received(base_stats), _received(stats)
        assert base > 0
        # Float32 payloads shrink exactly; the only slack is non-float tensors crossing (the
        # 4-byte control values of control edges), which travel raw under every encoding.
        raw = sum(n for n, enc in _per_tensor(stats).values() if enc == "none")
        assert (encoding == "none" or raw <= 8) and abs(got - base * RATIO[encoding]) <= raw, (encoding, got, base)
        base_tensors, tensors = _per_tensor(base_stats), _per_tensor(stats)
        assert base_tensors.keys() == tensors.keys()
        for name, (n, enc) in tensors.items():
            assert enc in (encoding, "none")
            assert n == (base_tensors[name][0] * RATIO[encoding] if enc == encoding else base_tensors[name][0]), name
        if encoding != "none":
            assert sum(n for n, enc in tensors.values() if enc == encoding) > 0


def test_step_stats_name_both_tasks_and_every_transfer(runs):
    stats = runs["int8"][2][0]
    recv = tensor_codec.transfer_bytes(stats, "_recv")
    sent = tensor_codec.transfer_bytes(stats, "_send")
    assert {d.split("/device")[0] for d in recv} == {"/job:ps/replica:0/task:0", "/job:worker/replica:0/task:0"}
    assert sum(recv.values()) == sum(sent.values())
    labels = [n.timeline_label for d in stats.dev_stats for n in d.node_stats]
    assert any("w/read:0 int8 4 bytes" in label for label in labels), labels


def test_config_carries_the_encoding_through_the_tf_proto():
    config = tf.ConfigProto(transfer_encoding="float16", allow_soft_placement=True)
    back = tensor_codec.config_from_wire(config.proto.__class__.FromString(tensor_codec.config_to_wire(config)))
    assert back.transfer_encoding == "float16" and back.allow_soft_placement
    assert not back.proto.HasField("rpc_options")
    plain = tf.ConfigProto()
    assert tensor_codec.config_to_wire(plain) == plain.proto.SerializeToString()
    with pytest.raises(ValueError, match="transfer encoding"):
        tensor_codec.config_to_wire(tf.ConfigProto(transfer_encoding="fp8"))
