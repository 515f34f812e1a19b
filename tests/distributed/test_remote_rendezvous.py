"""A task's step rendezvous table as the RecvTensor handler and the data channel use it: a take
whose caller gave up is withdrawn (the step's entry is released when nothing else waits), and a
consumer's retry of a key replaces a take still waiting (its caller gone before this task knew)."""

import numpy as np

from tensorweave.distributed.remote_rendezvous import StepRendezvousTable
from tensorweave.framework import errors

TASK = "/job:ps/replica:0/task:0"
DEVICE = f"{TASK}/device:CPU:0"
KEY = f"{DEVICE};1;/job:worker/replica:0/task:0/device:CPU:0;w:0;0"


def _table():
    return StepRendezvousTable(TASK, fetch_remote=None)


def _taker():
    got = []
    return got, lambda value, error: got.append((value, error))


def test_a_withdrawn_take_releases_the_step_and_a_later_take_gets_the_value():
    table = _table()
    first, first_cb = _taker()
    withdraw = table.take(7, KEY, first_cb)
    assert table.steps() == [7]
    withdraw()
    assert table.steps() == []  # nothing waits in step 7 any more
    withdraw()  # idempotent
    second, second_cb = _taker()
    table.take(7, KEY, second_cb)
    step = table.begin_step(7)
    step.send(KEY, np.float32(2.0))
    table.end_step(7)
    assert first == [] and second == [(2.0, None)]
    assert table.steps() == []


def test_a_newer_take_of_a_key_replaces_a_waiting_one():
    table = _table()
    first, first_cb = _taker()
    second, second_cb = _taker()
    table.take(8, KEY, first_cb)
    withdraw_second = table.take(8, KEY, second_cb)
    assert len(first) == 1 and first[0][0] is None
    assert isinstance(first[0][1], errors.CancelledError) and "newer receive" in first[0][1].message
    step = table.begin_step(8)
    step.send(KEY, np.float32(5.0))
    table.end_step(8)
    assert second == [(5.0, None)]
    withdraw_second()  # after delivery: nothing to take back
    assert second == [(5.0, None)] and table.steps() == []


def test_a_take_of_a_value_already_sent_delivers_at_once():
    table = _table()
    step = table.begin_step(9)
    step.send(KEY, np.float32(1.0))
    table.end_step(9)
    got, cb = _taker()
    withdraw = table.take(9, KEY, cb)
    assert got == [(1.0, None)]
    withdraw()
    assert table.steps() == []
