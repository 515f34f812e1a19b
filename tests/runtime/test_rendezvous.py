"""The in-process rendezvous: a receiver that gave up takes its waiter back, so the key's value
waits for the next receiver instead of going to the one that left."""

import numpy as np
import pytest

from tensorweave.framework import errors
from tensorweave.runtime.rendezvous import LocalRendezvous


def _receiver():
    got = []
    return got, lambda value, error: got.append((value, error))


def test_a_withdrawn_receiver_gets_nothing_and_the_next_one_gets_the_value():
    r = LocalRendezvous()
    first, first_cb = _receiver()
    r.recv_async("k", first_cb)
    assert r.pending_keys() == ([], ["k"])
    assert r.cancel("k", first_cb)
    assert r.pending_keys() == ([], [])
    assert not r.cancel("k", first_cb)  # withdrawn once only
    r.send("k", np.float32(3.0))
    second, second_cb = _receiver()
    r.recv_async("k", second_cb)
    assert first == [] and second == [(3.0, None)]


def test_cancel_does_not_touch_another_receiver_or_a_delivered_one():
    r = LocalRendezvous()
    got, cb = _receiver()
    r.recv_async("k", cb)
    assert not r.cancel("k", lambda value, error: None)  # not the waiting callback
    assert not r.cancel("other", cb)
    r.send("k", 1.0)
    assert got == [(1.0, None)]
    assert not r.cancel("k", cb)  # already delivered
    with pytest.raises(errors.InternalError, match="sent twice"):
        r.send("k", 2.0)
