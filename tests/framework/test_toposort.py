"""Kahn's algorithm, shared by plan compilation (over ops) and GraphDef import (over node names)."""

import pytest

import tensorweave as tf
from tensorweave.framework import errors
from tensorweave.framework.toposort import CycleError, kahn_order
from tensorweave.runtime.plan import topological_order


def test_every_item_follows_its_predecessors_and_ties_go_by_key():
    preds = {"d": ["b", "c"], "b": ["a"], "c": ["a"], "a": [], "e": []}
    key = {"a": 3, "b": 2, "c": 1, "d": 0, "e": 4}.__getitem__
    assert kahn_order(["a", "b", "c", "d", "e"], preds.__getitem__, key) == ["a", "c", "b", "d", "e"]
    assert kahn_order(["e", "d"], preds.__getitem__, key) == ["d", "e"]  # outside predecessors are ignored


def test_repeated_predecessors_count_once_and_items_are_never_compared():
    class Item:  # no ordering: ties on equal keys go by position in the input
        pass
    a, b, c = Item(), Item(), Item()
    preds = {a: [], b: [a, a, a], c: []}
    assert kahn_order([c, b, a], preds.__getitem__, key=lambda item: 0) == [c, a, b]


def test_a_cycle_raises_with_the_unordered_items_by_key():
    preds = {"a": ["c"], "b": ["a"], "c": ["b"], "d": ["c"], "free": []}
    with pytest.raises(CycleError) as info:
        kahn_order(["d", "c", "b", "a", "free"], preds.__getitem__, key=lambda name: name)
    assert isinstance(info.value, ValueError)
    assert info.value.unordered == ["a", "b", "c", "d"]
    assert "['a', 'b', 'c', 'd']" in str(info.value)
    with pytest.raises(ValueError, match="distinct"):
        kahn_order(["a", "a"], lambda item: [], key=str)


def test_plan_order_follows_data_and_control_inputs_and_names_cycles():
    with tf.Graph().as_default():
        late = tf.no_op(name="late")
        x = tf.constant(1.0, name="x")
        y = tf.identity(x, name="y")
        with tf.control_dependencies([y.op]):
            z = tf.identity(x, name="z")
        assert topological_order([z.op, y.op, x.op, late]) == [late, x.op, y.op, z.op]
        y.op._add_control_input(z.op)
        with pytest.raises(errors.InvalidArgumentError, match=r"cycle among ops \['y', 'z'\]"):
            topological_order([x.op, y.op, z.op])
