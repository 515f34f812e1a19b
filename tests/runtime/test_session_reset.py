"""`tf.Session.reset("")` in-process (a TensorWeave extension; TF's direct sessions do the same):
every in-process session is cleared and closed (a run then raises CancelledError; each session
owns its variables, so nothing of it survives, whatever containers are named), and new sessions
start empty. A resource manager's clear makes plans compiled before it look their variables up
again, and leaves containers it does not name alone."""

import pytest

import tensorweave as tf
from tensorweave.framework import errors
from tensorweave.runtime.device import ResourceMgr


def _graph():
    with tf.Graph().as_default() as g:
        with tf.container("c"):
            v = tf.Variable(1.0, name="v")
        w = tf.Variable(2.0, name="w")
        init = tf.global_variables_initializer()
    return g, v, w, init


def test_local_reset_clears_named_containers_and_closes_every_local_session():
    g, v, w, init = _graph()
    first, second = tf.Session(graph=g), tf.Session(graph=g)
    try:
        for sess in (first, second):
            sess.run(init)
        managers = [sess._runtime.device.resources for sess in (first, second)]
        tf.Session.reset("", ["c"])
        assert [resources.items() for resources in managers] == [[], []]
        for sess in (first, second):
            with pytest.raises(errors.CancelledError, match="closed"):
                sess.run(w)
        with tf.Session(graph=g) as fresh:  # a new session starts empty
            with pytest.raises(errors.FailedPreconditionError, match="v"):
                fresh.run(v)
    finally:
        first.close()
        second.close()


def test_local_reset_without_containers_and_with_bytes_target():
    g, v, w, init = _graph()
    with tf.Session(graph=g) as sess:
        sess.run(init)
        tf.Session.reset(b"", None)
        with pytest.raises(errors.CancelledError):
            sess.run(v)


def test_reset_of_an_unknown_target_is_not_found():
    with pytest.raises(errors.NotFoundError):
        tf.Session.reset("nosuch://x")


def test_cached_resource_is_looked_up_again_after_a_clear():
    resources = ResourceMgr()
    made = []

    def factory():
        made.append(object())
        return made[-1]
    get = resources.cached("c", "r", factory)
    assert get() is get() is made[0]
    resources.clear_containers(["other"])
    assert get() is made[0] and len(made) == 1  # the resource itself is still there
    resources.clear_containers(["c"])
    assert get() is made[1]
    resources.clear_containers(None)
    assert get() is made[2]
