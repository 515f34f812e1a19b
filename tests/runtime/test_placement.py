"""Placement as a pure function: partial device requests, colocation, soft placement, filters."""

import pytest

import tensorweave as tf
from tensorweave.runtime.placement import place
from tensorweave.runtime.session import LOCAL_DEVICE, check_local_placement

PS0 = "/job:ps/replica:0/task:0/device:CPU:0"
PS1 = "/job:ps/replica:0/task:1/device:CPU:0"
W0 = "/job:worker/replica:0/task:0/device:CPU:0"
W0_GPU = "/job:worker/replica:0/task:0/device:GPU:0"
W1 = "/job:worker/replica:0/task:1/device:CPU:0"
CLUSTER = [PS0, PS1, W1, W0_GPU, W0]


def _placed(requests, **kwargs):
    """Places one constant per requested device string; returns the chosen devices in order."""
    with tf.Graph().as_default() as g:
        ops = []
        for request in requests:
            with tf.device(request):
                ops.append(tf.constant(1.0).op)
        placement = place(g.get_operations(), kwargs.pop("devices", CLUSTER),
                          default_device=kwargs.pop("default_device", W0), **kwargs)
    return [placement[op] for op in ops]


def test_partial_requests_match_job_task_and_type_and_default_to_the_client_device():
    assert _placed([None, "/job:ps", "/job:ps/task:1", "/job:worker", "/job:worker/task:1",
                    "/device:GPU:0", "/cpu:0", "/job:worker/task:0/device:GPU:*"]) == \
        [W0, PS0, PS1, W0, W1, W0_GPU, W0, W0_GPU]
    # Partial requests prefer the default device's task, then the first task in name order.
    assert _placed(["/cpu:0", "/job:worker"], default_device=W1) == [W1, W1]
    assert _placed([None], default_device=PS1) == [PS1]


def test_no_matching_device_raises_naming_op_request_and_available_devices():
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        _placed(["/job:ps/task:7"])
    message = str(info.value)
    assert "Const" in message and "/job:ps/task:7" in message and PS0 in message and W1 in message
    assert "test_placement.py" in message  # the creation site
    with pytest.raises(tf.errors.InvalidArgumentError, match="GPU:1"):
        _placed(["/gpu:1"])


def test_soft_placement_drops_device_type_first_then_falls_back_to_default():
    requests = ["/job:worker/task:1/device:GPU:0", "/job:ps/task:1/device:CPU:3", "/job:nowhere", "/gpu:3"]
    assert _placed(requests, allow_soft_placement=True) == [W1, PS1, W0, W0]


def test_device_filters_restrict_available_devices():
    filters = ["/job:ps/task:0", "/job:worker/task:0"]
    assert _placed(["/job:ps", "/job:worker", None], device_filters=filters) == [PS0, W0, W0]
    with pytest.raises(tf.errors.InvalidArgumentError, match="/job:ps/task:1"):
        _placed(["/job:ps/task:1"], device_filters=filters)
    assert _placed(["/job:ps/task:1"], device_filters=filters, allow_soft_placement=True) == [W0]
    with pytest.raises(tf.errors.InvalidArgumentError, match="Default device"):
        _placed([None], device_filters=["/job:ps"])


def test_variable_its_assign_and_apply_op_land_on_the_ps_even_under_a_worker_scope():
    with tf.Graph().as_default() as g:
        with tf.device("/job:ps/task:1"):
            v = tf.Variable(tf.zeros([2]), name="v")
        with tf.device("/job:worker/task:1"):
            x = tf.placeholder(tf.float32, [2])
            loss = tf.reduce_sum(v * x)
            train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        placement = place(g.get_operations(), CLUSTER, default_device=W0)
    apply_ops = [op for op in g.get_operations() if op.type == "ApplyGradientDescent"]
    assert len(apply_ops) == 1
    assert placement[v.op] == placement[v.initializer] == placement[apply_ops[0]] == PS1
    assert placement[loss.op] == placement[train] == W1


def test_group_request_is_the_union_of_members_and_ref_consumers_follow_their_variable():
    with tf.Graph().as_default() as g:
        with tf.device("/job:ps"):
            v = tf.Variable(1.0, name="v")
        # Asks for a task only; merged with the variable's job, the whole group goes to ps task 1.
        g.create_op("Identity", [v.value()], name="pin", device="/task:1",
                    attrs={"_class": [b"loc:@v"]})
        # A reference consumer outside any colocation scope, with no request of its own.
        ref_reader = g.create_op("IsVariableInitialized", [v._ref()], name="is_init")
        placement = place(g.get_operations(), CLUSTER, default_device=W0)
    assert ref_reader.colocation_groups() == [b"loc:@is_init"]
    assert placement[v.op] == placement[v.initializer] == placement[ref_reader] == PS1


def test_conflicting_requests_in_a_colocation_group_raise_naming_both_ops():
    with tf.Graph().as_default() as g:
        with tf.device("/job:ps/task:0"):
            v = tf.Variable(1.0, name="v")
        with g.colocate_with(v.op):
            stray = g.create_op("Identity", [v.value()], name="stray", device="/job:worker/task:1")
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"Cannot colocate nodes v and stray"):
            place(g.get_operations(), CLUSTER, default_device=W0)
        placement = place(g.get_operations(), CLUSTER, default_device=W0, allow_soft_placement=True)
    assert placement[stray] == placement[v.op] == PS0  # soft: the variable's request wins


def test_ref_consumer_requesting_another_device_conflicts_with_its_variable():
    with tf.Graph().as_default() as g:
        with tf.device("/job:ps/task:0"):
            v = tf.Variable(1.0, name="v")
        with tf.device("/job:worker/task:1"):
            check = g.create_op("IsVariableInitialized", [v._ref()], name="is_init")
        with pytest.raises(tf.errors.InvalidArgumentError, match="v and is_init"):
            place(g.get_operations(), CLUSTER, default_device=W0)
        soft = place(g.get_operations(), CLUSTER, default_device=W0, allow_soft_placement=True)
    assert soft[check] == PS0


def test_full_device_names_are_required_and_placement_is_deterministic():
    with pytest.raises(ValueError, match="full device name"):
        _placed([None], devices=["/job:worker/task:0"], default_device="/job:worker/task:0")
    assert _placed(["/job:worker"], devices=list(reversed(CLUSTER))) == [W0]


LOCAL_REQUESTS = [None, "/cpu:0", "/device:CPU:*", "/job:localhost", LOCAL_DEVICE, "/job:localhost/task:0",
                  "/gpu:0", "/cpu:1", "/job:worker", "/task:1", "/replica:1", "/job:localhost/device:GPU:0"]


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("request_", LOCAL_REQUESTS)
def test_the_local_sessions_rule_is_place_with_one_device(request_, soft):
    with tf.Graph().as_default() as g:
        with tf.device(request_):
            tf.Variable(1.0, name="v")
            tf.constant(2.0) + 1.0
        ops = g.get_operations()

    def decision(fn):
        try:
            fn()
        except tf.errors.InvalidArgumentError:
            return "reject"
        return "accept"
    local = decision(lambda: check_local_placement(ops, soft))
    placed = decision(lambda: place(ops, [LOCAL_DEVICE], default_device=LOCAL_DEVICE, allow_soft_placement=soft))
    assert local == placed
    if placed == "accept":
        assert set(place(ops, [LOCAL_DEVICE], default_device=LOCAL_DEVICE,
                         allow_soft_placement=soft).values()) == {LOCAL_DEVICE}
