"""tf.variable_scope / tf.get_variable: TF1's naming, reuse rules, defaults and errors."""

import numpy as np
import pytest

import tensorweave as tf


@pytest.fixture(autouse=True)
def _fresh_graph():
    with tf.Graph().as_default() as g:
        yield g
        assert tf.get_default_graph() is g  # the scopes left the graph stack as they found it


def _init_and_run(fetches):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(fetches)


def test_get_variable_names_and_collections():
    with tf.variable_scope("foo"):
        w = tf.get_variable("w", [2, 3])
        with tf.variable_scope("bar"):
            b = tf.get_variable("b", [3])
    assert (w.name, b.name) == ("foo/w:0", "foo/bar/b:0")
    assert w.shape.as_list() == [2, 3] and w.dtype is tf.float32
    assert tf.global_variables() == [w, b] and tf.trainable_variables() == [w, b]
    assert tf.get_variable_scope().name == ""


def test_reuse_true_returns_the_same_variable():
    with tf.variable_scope("foo"):
        w = tf.get_variable("w", [2])
    with tf.variable_scope("foo", reuse=True):
        assert tf.get_variable("w", [2]) is w
        assert tf.get_variable("w") is w  # shape may be left out on reuse


def test_reuse_true_requires_existence():
    with tf.variable_scope("foo", reuse=True), pytest.raises(ValueError) as e:
        tf.get_variable("w", [1])
    assert str(e.value) == ("Variable foo/w does not exist, or was not created with tf.get_variable(). "
                            "Did you mean to set reuse=tf.AUTO_REUSE in VarScope?")


def test_no_reuse_forbids_existing():
    with tf.variable_scope("foo"):
        tf.get_variable("w", [1])
    for reuse in (None, False):
        with tf.variable_scope("foo", reuse=reuse), pytest.raises(ValueError) as e:
            tf.get_variable("w", [1])
        assert str(e.value).startswith("Variable foo/w already exists, disallowed. Did you mean to set "
                                       "reuse=True or reuse=tf.AUTO_REUSE in VarScope?")
        assert "test_variable_scope.py" in str(e.value)  # where it was first defined


def test_a_tf_variable_does_not_count_as_existing():
    tf.Variable(1.0, name="v")
    with pytest.raises(ValueError, match="does not exist"), tf.variable_scope("", reuse=True):
        tf.get_variable("v", [])


def test_reuse_variables_and_inheritance():
    with tf.variable_scope("foo") as scope:
        w = tf.get_variable("w", [1])
        with tf.variable_scope("inner"):
            v = tf.get_variable("v", [1])
        scope.reuse_variables()
        assert scope.reuse is True
        assert tf.get_variable("w", [1]) is w
        with tf.variable_scope("inner"):
            assert tf.get_variable_scope().reuse is True  # inherited
            assert tf.get_variable("v", [1]) is v
        # reuse=False cannot switch reuse off inside a reusing scope
        with tf.variable_scope("inner", reuse=False):
            assert tf.get_variable_scope().reuse is True


def test_auto_reuse():
    def layer():
        with tf.variable_scope("layer", reuse=tf.AUTO_REUSE):
            return tf.get_variable("w", [2])
    assert layer() is layer()
    assert len(tf.global_variables()) == 1
    with tf.variable_scope("outer", reuse=tf.AUTO_REUSE):
        with tf.variable_scope("in"):
            assert tf.get_variable_scope().reuse is tf.AUTO_REUSE
            a = tf.get_variable("a", [1])
        with tf.variable_scope("in"):
            assert tf.get_variable("a", [1]) is a


def test_shape_and_dtype_mismatch_on_reuse():
    with tf.variable_scope("foo"):
        tf.get_variable("w", [2, 3])
    with tf.variable_scope("foo", reuse=True):
        with pytest.raises(ValueError, match=r"Trying to share variable foo/w, but specified shape \(3, 2\)"):
            tf.get_variable("w", [3, 2])
        with pytest.raises(ValueError, match="specified dtype float64 and found dtype float32"):
            tf.get_variable("w", [2, 3], dtype=tf.float64)


def test_name_scopes_of_ops_versus_variables():
    with tf.variable_scope("foo") as scope:
        c = tf.constant(1.0, name="c")
        with tf.name_scope("ns"):
            v = tf.get_variable("v", [1])  # name scopes do not prefix variables
            d = tf.constant(1.0, name="d")
    assert (c.op.name, v.op.name, d.op.name) == ("foo/c", "foo/v", "foo/ns/d")
    assert scope.original_name_scope == "foo/"
    with tf.variable_scope(scope):  # re-entering a scope object: new name scope, same variables
        c2 = tf.constant(1.0, name="c")
        with pytest.raises(ValueError, match="already exists"):
            tf.get_variable("v", [1])
        assert tf.get_variable_scope().name == "foo"
        assert tf.get_variable_scope().original_name_scope == "foo/"
    assert c2.op.name == "foo_1/c"
    with tf.variable_scope("foo"):  # the same name again: a new name scope too
        assert tf.constant(1.0, name="c").op.name == "foo_2/c"


def test_reentering_a_scope_object_from_elsewhere():
    with tf.variable_scope("a") as a_scope:
        w = tf.get_variable("w", [1])
    with tf.variable_scope("b"):
        with tf.variable_scope(a_scope, reuse=True):
            assert tf.get_variable_scope().name == "a"
            assert tf.get_variable("w", [1]) is w
        with tf.variable_scope(a_scope):
            y = tf.get_variable("y", [1])
    assert y.op.name == "a/y"


def test_default_name_is_made_unique():
    names = []
    for _ in range(3):
        with tf.variable_scope(None, default_name="dense") as scope:
            names.append(scope.name)
            tf.get_variable("kernel", [1])
    assert names == ["dense", "dense_1", "dense_2"]
    with tf.variable_scope("net"):
        with tf.variable_scope(None, default_name="dense") as scope:
            assert scope.name == "net/dense"
    with pytest.raises(ValueError, match="reuse=True cannot be used without a name_or_scope"):
        with tf.variable_scope(None, default_name="x", reuse=True):
            pass
    with pytest.raises(TypeError):
        tf.variable_scope(None)


def test_default_names_restart_in_a_new_outer_scope():
    for outer in ("a", "b"):
        with tf.variable_scope(outer):
            with tf.variable_scope(None, default_name="layer") as s:
                assert s.name == f"{outer}/layer"


def test_default_initializers():
    f = tf.get_variable("f", [50, 50])
    i = tf.get_variable("i", [3], dtype=tf.int32)
    b = tf.get_variable("b", [2], dtype=tf.bool)
    fv, iv, bv = _init_and_run([f, i, b])
    limit = np.sqrt(6.0 / 100)
    assert np.abs(fv).max() <= limit and fv.std() > 0.5 * limit / np.sqrt(3)
    np.testing.assert_array_equal(iv, [0, 0, 0])
    np.testing.assert_array_equal(bv, [False, False])


def test_initializer_from_value():
    a = tf.get_variable("a", initializer=np.arange(4.0).reshape(2, 2))
    b = tf.get_variable("b", initializer=tf.constant([1, 2, 3]))
    assert a.dtype is tf.float64 and a.shape.as_list() == [2, 2]
    assert b.dtype is tf.int32
    av, bv = _init_and_run([a, b])
    np.testing.assert_array_equal(av, np.arange(4.0).reshape(2, 2))
    np.testing.assert_array_equal(bv, [1, 2, 3])
    with pytest.raises(ValueError, match="If initializer is a constant, do not specify shape."):
        tf.get_variable("c", [3], initializer=tf.constant([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="don't match"):
        tf.get_variable("d", dtype=tf.float32, initializer=tf.constant([1, 2]))


def test_callable_initializers():
    c = tf.get_variable("c", [2, 2], initializer=tf.constant_initializer(3.0))
    d = tf.get_variable("d", [2], initializer=lambda shape, dtype, partition_info: tf.ones(shape, dtype) * 2)
    e = tf.get_variable("e", initializer=lambda: tf.zeros([3]))
    f = tf.get_variable("f", [2], dtype=tf.float64, initializer=tf.ones_initializer)  # a class
    cv, dv, ev, fv = _init_and_run([c, d, e, f])
    np.testing.assert_array_equal(cv, np.full((2, 2), 3.0))
    np.testing.assert_array_equal(dv, [2.0, 2.0])
    np.testing.assert_array_equal(ev, [0.0, 0.0, 0.0])
    assert fv.dtype == np.float64 and list(fv) == [1.0, 1.0]
    with pytest.raises(ValueError, match="initializer passed is not valid"):
        tf.get_variable("g", initializer=tf.zeros_initializer())


def test_initializer_ops_live_under_the_variable():
    with tf.variable_scope("layer"):
        w = tf.get_variable("w", [2, 2])
    names = [op.name for op in w.graph.get_operations()]
    assert "layer/w/Initializer/random_uniform" in names
    assert w.initializer.name == "layer/w/Assign"


def test_scope_initializer_dtype_and_override():
    with tf.variable_scope("s", initializer=tf.constant_initializer(5.0), dtype=tf.float64):
        a = tf.get_variable("a", [1])
        with tf.variable_scope("t"):
            b = tf.get_variable("b", [1])  # inherits initializer and dtype
            c = tf.get_variable("c", [1], initializer=tf.zeros_initializer())
        with tf.variable_scope("u", initializer=tf.ones_initializer()):
            d = tf.get_variable("d", [1])
    assert a.dtype is tf.float64 and b.dtype is tf.float64
    av, bv, cv, dv = _init_and_run([a, b, c, d])
    assert (av[0], bv[0], cv[0], dv[0]) == (5.0, 5.0, 0.0, 1.0)
    scope = tf.get_variable_scope()
    scope.set_initializer(tf.constant_initializer(7.0))
    assert _init_and_run(tf.get_variable("e", [1]))[0] == 7.0


def test_regularizer_adds_losses():
    reg = lambda v: tf.reduce_sum(v * v)  # noqa: E731
    with tf.variable_scope("r", regularizer=reg):
        w = tf.get_variable("w", initializer=np.array([1.0, 2.0], np.float32))
        tf.get_variable("nb", [1], regularizer=lambda v: None)
    losses = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
    assert len(losses) == 1
    assert losses[0].op.name.startswith("r/w/Regularizer/")
    assert _init_and_run(losses[0]) == pytest.approx(5.0)
    assert w.name == "r/w:0"


def test_trainable_collections_and_local_variables():
    n = tf.get_variable("n", [1], trainable=False)
    c = tf.get_variable("c", [1], collections=["mine"])
    loc = tf.get_local_variable("loc", [1])
    assert n not in tf.trainable_variables() and n in tf.global_variables()
    assert tf.get_collection("mine") == [c] and c in tf.trainable_variables()
    assert c not in tf.global_variables()
    assert tf.local_variables() == [loc] and loc not in tf.trainable_variables()
    assert loc not in tf.global_variables()


def test_custom_getters_nest():
    calls = []

    def outer(getter, name, *args, **kwargs):
        calls.append(("outer", name))
        return getter(name, *args, **kwargs)

    def inner(getter, name, *args, **kwargs):
        calls.append(("inner", name))
        kwargs["trainable"] = False
        return getter(name, *args, **kwargs)

    with tf.variable_scope("a", custom_getter=outer):
        with tf.variable_scope("b", custom_getter=inner):
            v = tf.get_variable("v", [1])
    assert calls == [("inner", "a/b/v"), ("outer", "a/b/v")]
    assert v not in tf.trainable_variables()
    with pytest.raises(ValueError, match="not callable"):
        tf.get_variable("x", [1], custom_getter=3)


def test_variable_scope_collections():
    with tf.variable_scope("m") as scope:
        w = tf.get_variable("w", [1])
        tf.get_variable("n", [1], trainable=False)
    tf.get_variable("other", [1])
    assert scope.trainable_variables() == [w]
    assert len(scope.global_variables()) == 2


def test_auxiliary_name_scope_false():
    with tf.name_scope("outer"):
        with tf.variable_scope("vs", auxiliary_name_scope=False) as scope:
            c = tf.constant(1.0, name="c")
            v = tf.get_variable("v", [1])
    assert c.op.name == "outer/c" and v.op.name == "vs/v"
    assert scope.original_name_scope == "outer/"


def test_root_scope_reentry_and_control_dependencies():
    x = tf.constant(1.0)
    with tf.control_dependencies([x.op]):
        v = tf.get_variable("v", [1])
    assert v.initializer.control_inputs == [] and v.op.control_inputs == []
    with tf.variable_scope(tf.get_variable_scope(), reuse=True):
        assert tf.get_variable("v", [1]) is v


def test_a_tf_variable_made_under_control_dependencies_initializes_alone():
    # As in TF1: the initializer must not wait for (here: need a feed for) the ops around it.
    x = tf.placeholder(tf.float32, [])
    update = tf.assign(tf.Variable(0.0, name="seen"), x)
    with tf.control_dependencies([update]):
        v = tf.Variable(lambda: tf.ones([2]), name="v")
        after = tf.identity(v)
    assert v.initializer.control_inputs == [] and v.op.control_inputs == []
    assert v.initial_value.op.control_inputs == []
    assert after.op.control_inputs == [update.op]  # the block still applies to the ops made in it
    assert _init_and_run(v).tolist() == [1.0, 1.0]


def test_values_pick_the_graph():
    other = tf.Graph()
    with other.as_default():
        t = tf.constant(1.0)
    with tf.variable_scope("s", values=[t]):
        assert tf.get_default_graph() is other
        v = tf.get_variable("v", [1])
    assert v.graph is other
    assert tf.get_default_graph() is not other


def test_reuse_must_be_valid():
    with pytest.raises(ValueError, match="reuse parameter"):
        tf.variable_scope("x", reuse="yes")


def test_improper_nesting_is_detected():
    a = tf.variable_scope("a")
    b = tf.variable_scope("b")
    a.__enter__()
    b.__enter__()
    try:
        with pytest.raises(RuntimeError, match="Improper nesting"):
            a.__exit__(None, None, None)
    finally:
        b.__exit__(None, None, None)
        a.__exit__(None, None, None)
    assert tf.get_variable_scope().name == ""


def test_variable_scope_per_graph():
    with tf.variable_scope("g1"):
        tf.get_variable("w", [1])
    with tf.Graph().as_default():
        assert tf.get_variable_scope().name == ""
        with tf.variable_scope("g1"):
            tf.get_variable("w", [1])  # a separate store: no clash
