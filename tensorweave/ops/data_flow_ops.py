"""Queues and conditional accumulators: `tf.FIFOQueue`, `tf.ConditionalAccumulator` and
`tf.SparseConditionalAccumulator`.

Their state lives in the device's resource manager under (container, shared name or op name),
exactly as a variable's does, so every graph that places the op on the same device shares it
(a token queue or a gradient accumulator on a parameter server, reached by every worker). The
handle op outputs a reference to the state; the ops using it take that reference, so the
placer colocates them with it. Requests that may have to wait (dequeue, an enqueue into a full
queue, take_grad) are asynchronous kernels: they call back when met and never block the
executor; an aborted step withdraws them with its error (`data_flow_state`).

TensorWeave extensions, as attrs whose leading underscore TF's NodeDef check lets pass (graphs
without them behave as before): `_replica` on dequeues, `apply_grad` and `take_grad` names the
worker the request comes from; `_timeout_ms` on `take_grad` bounds its wait (see
`ConditionalAccumulator.take_grad`); `fail_replica_requests` fails one replica's waiting requests.
"""

import numpy as np

from tensorweave.framework import dtypes, errors
from tensorweave.framework.graph import get_default_graph
from tensorweave.framework.indexed_slices import IndexedSlices
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, name_scope
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor_shape import TensorShape, as_shape, unknown_shape
from tensorweave.ops import array_ops
from tensorweave.ops.constant_op import static_value
from tensorweave.ops.data_flow_state import AccumulatorState, FIFOQueueState, SparseAccumulatorState

_as_dtype = dtypes.as_dtype  # FIFOQueue's argument `dtypes` hides the module there


def _state(op, device, factory):
    """The handle kernel of a queue or accumulator: returns its state, looked up again (a new,
    empty one) after `tf.Session.reset` cleared its container."""
    container = op.get_attr("container")
    shared_name = op.get_attr("shared_name") or op.name
    lookup = device.resources.cached(container, shared_name, factory)

    def get():
        state = lookup()
        if not isinstance(state, (FIFOQueueState, AccumulatorState)):
            raise op.error(errors.InvalidArgumentError, f"Resource {container}/{shared_name} is a "
                           f"{type(state).__name__}, not a queue or accumulator")
        return state
    get()  # a name clash fails when the plan is built, as before
    return get


def _handle_shape(op):
    return [(dtypes.string, TensorShape([]))]


def _optional_attr(op, name, default):
    """Extension attr `name` of `op` (not in TF's schema), or `default` for graphs without it."""
    return op.attrs.get(name, default)


def _callback(done, convert=None):
    """`done` of an async kernel, for a resource's `(value, error)` callback."""
    if convert is None:
        return done
    return lambda value, error: done(None, error) if error is not None else done(convert(value), None)


# -- FIFOQueue ---------------------------------------------------------------------------------

FIFOQueueV2 = define_op("FIFOQueueV2", stateful=True, differentiable=False, ref_outputs=True)
FIFOQueueV2.shape_fn(_handle_shape)


@FIFOQueueV2.kernel
def _fifo_queue_kernel(op, device):
    types, shapes = op.get_attr("component_types"), op.get_attr("shapes")
    return _state(op, device, lambda: FIFOQueueState(
        op.get_attr("shared_name") or op.name, types, shapes, op.get_attr("capacity")))


def _component_arrays(op, state, components, batched):
    """The elements (tuples of arrays) that enqueue inputs `components` make."""
    arrays = [np.asarray(c, dtype=t) for c, t in zip(components, state.np_dtypes, strict=True)]
    for i, a in enumerate(arrays):
        element_shape = a.shape[1:] if batched else a.shape
        if state.shapes and not state.shapes[i].is_compatible_with(element_shape):
            raise op.error(errors.InvalidArgumentError, f"Shape mismatch in tuple component {i}. Expected "
                           f"{state.shapes[i]}, got {list(element_shape)}")
    if not batched:
        return [tuple(a.copy() for a in arrays)]
    sizes = {a.shape[0] if a.ndim else None for a in arrays}
    if None in sizes or len(sizes) != 1:
        raise op.error(errors.InvalidArgumentError, f"enqueue_many needs components of rank >= 1 with one "
                       f"batch size, got shapes {[list(a.shape) for a in arrays]}")
    return [tuple(np.array(a[j], copy=True) for a in arrays) for j in range(sizes.pop())]


def _enqueue_def(type_name, batched):
    op_def = define_op(type_name, stateful=True, differentiable=False, ref_inputs=(0,), async_kernel=True)

    @op_def.shape_fn
    def _shape(op):
        handle = op.inputs[0].op
        shapes = handle.get_attr("shapes") if handle.type == "FIFOQueueV2" else []
        if not shapes:  # a queue made without shapes takes elements of any shape
            return []
        for i, (expected, t) in enumerate(zip(shapes, op.inputs[1:], strict=True)):
            element = t.shape[1:] if batched and t.shape.ndims else t.shape
            if batched and t.shape.ndims == 0:
                raise ValueError(f"enqueue_many needs components of rank >= 1, component {i} is a scalar")
            if not expected.is_compatible_with(element):
                raise ValueError(f"Shapes {element} and {expected} are incompatible: component {i} of an "
                                 f"element of queue {handle.name}")
        return []

    @op_def.kernel
    def _kernel(op, device):
        def enqueue(step, done, state, *components):
            state.enqueue(_component_arrays(op, state, components, batched), done, step, device.name, op.name)
        return enqueue
    return op_def


QueueEnqueueV2 = _enqueue_def("QueueEnqueueV2", batched=False)
QueueEnqueueManyV2 = _enqueue_def("QueueEnqueueManyV2", batched=True)


def _dequeue_shapes(op, batch):
    handle = op.inputs[0].op
    shapes = handle.get_attr("shapes") if handle.type == "FIFOQueueV2" else []
    types = op.get_attr("component_types")
    if not shapes:
        shapes = [unknown_shape()] * len(types)
    if batch is not False:
        shapes = [TensorShape([batch]).concatenate(s) for s in shapes]
    return list(zip(types, shapes, strict=True))


QueueDequeueV2 = define_op("QueueDequeueV2", stateful=True, differentiable=False, ref_inputs=(0,),
                           async_kernel=True)


@QueueDequeueV2.shape_fn
def _dequeue_shape(op):
    return _dequeue_shapes(op, False)


@QueueDequeueV2.kernel
def _dequeue_kernel(op, device):
    single = len(op.get_attr("component_types")) == 1
    convert = (lambda element: element[0]) if single else None

    replica = _optional_attr(op, "_replica", "")

    def dequeue(step, done, state):
        state.dequeue(None, _callback(done, convert), step, device.name, op.name, replica)
    return dequeue


QueueDequeueManyV2 = define_op("QueueDequeueManyV2", stateful=True, differentiable=False, ref_inputs=(0,),
                               async_kernel=True)


@QueueDequeueManyV2.shape_fn
def _dequeue_many_shape(op):
    n = static_value(op.inputs[1])
    return _dequeue_shapes(op, None if n is None else int(n))


@QueueDequeueManyV2.kernel
def _dequeue_many_kernel(op, device):
    single = len(op.get_attr("component_types")) == 1
    convert = (lambda batch: batch[0]) if single else None
    replica = _optional_attr(op, "_replica", "")

    def dequeue_many(step, done, state, n):
        n = int(n)
        if n < 0:
            raise op.error(errors.InvalidArgumentError, f"Dequeue size must be non-negative, got {n}")
        state.dequeue(n, _callback(done, convert), step, device.name, op.name, replica)
    return dequeue_many


QueueSizeV2 = define_op("QueueSizeV2", stateful=True, differentiable=False, ref_inputs=(0,))


@QueueSizeV2.shape_fn
def _size_shape(op):
    return [(dtypes.int32, TensorShape([]))]


@QueueSizeV2.kernel
def _size_kernel(op, device):
    return lambda state: np.array(state.size(), dtype=np.int32)


QueueCloseV2 = define_op("QueueCloseV2", stateful=True, differentiable=False, ref_inputs=(0,))
QueueCloseV2.shape_fn(lambda op: [])


@QueueCloseV2.kernel
def _close_kernel(op, device):
    cancel = op.get_attr("cancel_pending_enqueues")
    return lambda state: state.close(cancel)


def _in_handle_graph(method):
    """Builds the method's ops in the graph of the queue or accumulator, as TF1 does."""
    def wrapper(self, *args, **kwargs):
        with self._handle.graph.as_default():
            return method(self, *args, **kwargs)
    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper


def _colocated_op(op_type, inputs, attrs=None, name=None):
    """An op using the handle `inputs[0]`, colocated with it (as an assignment is with its variable)."""
    with inputs[0].graph.colocate_with(inputs[0].op):
        return apply_op(op_type, inputs, attrs, name=name)


def _plain(t):
    """`t`, or a snapshot of it if it is a variable reference (async kernels take values)."""
    t = convert_to_tensor(t)
    return array_ops.identity(t) if t.op.op_def.ref_outputs else t


class QueueBase:
    """The operations of a queue whose handle is `queue_ref` (TF1's `tf.QueueBase`)."""

    def __init__(self, dtypes_, shapes, names, queue_ref):
        self._dtypes = [dtypes.as_dtype(t) for t in dtypes_]
        self._shapes = [as_shape(s) for s in shapes] if shapes else [unknown_shape()] * len(self._dtypes)
        self._names = list(names) if names is not None else None
        self._queue_ref = self._handle = queue_ref
        self._name = queue_ref.op.name.split("/")[-1]

    @property
    def queue_ref(self):
        return self._queue_ref

    @property
    def name(self):
        return self._queue_ref.op.name

    @property
    def dtypes(self):
        return self._dtypes

    @property
    def shapes(self):
        return self._shapes

    @property
    def names(self):
        return self._names

    def _components(self, vals):
        if isinstance(vals, dict):
            if self._names is None:
                raise ValueError("Queue must have names to enqueue a dictionary")
            if sorted(self._names) != sorted(vals):
                raise ValueError(f"Keys in dictionary to enqueue do not match names of Queue. Dictionary: "
                                 f"{sorted(vals)}, Queue: {sorted(self._names)}")
            vals = [vals[k] for k in self._names]
        elif self._names is not None:
            raise ValueError("You must enqueue a dictionary in a Queue with names")
        elif not isinstance(vals, (list, tuple)):
            vals = [vals]
        if len(vals) != len(self._dtypes):
            raise ValueError(f"Expected {len(self._dtypes)} components to enqueue, got {len(vals)}")
        return [_plain(convert_to_tensor(v, dtype=t)) for v, t in zip(vals, self._dtypes, strict=True)]

    def _enqueue(self, op_type, vals, name, default):
        with name_scope(name, f"{self._name}_{default}") as scope:
            components = self._components(vals)
            return _colocated_op(op_type, [self._queue_ref] + components,
                                 {"Tcomponents": [c.dtype for c in components], "timeout_ms": -1}, name=scope)

    @_in_handle_graph
    def enqueue(self, vals, name=None):
        """Enqueues one element (a tensor, a list of tensors, or a dict when the queue has
        names); the op waits while the queue is full."""
        return self._enqueue("QueueEnqueueV2", vals, name, "enqueue")

    @_in_handle_graph
    def enqueue_many(self, vals, name=None):
        """Enqueues the rows of `vals` (each component's dimension 0) as separate elements."""
        return self._enqueue("QueueEnqueueManyV2", vals, name, "EnqueueMany")

    def _outputs(self, out):
        out = out if isinstance(out, list) else [out]
        if self._names is not None:
            return dict(zip(self._names, out, strict=True))
        return out[0] if len(out) == 1 else out

    @_in_handle_graph
    def dequeue(self, name=None, replica=None):
        """Dequeues one element; the op waits while the queue is empty, and fails with
        `tf.errors.OutOfRangeError` once it is closed and empty. `replica` (an extension) names
        the worker asking, for `fail_replica_requests`."""
        attrs = {"component_types": list(self._dtypes), "timeout_ms": -1}
        if replica:
            attrs["_replica"] = replica
        with name_scope(name, f"{self._name}_Dequeue") as scope:
            out = _colocated_op("QueueDequeueV2", [self._queue_ref], attrs, name=scope)
        return self._outputs(out)

    @_in_handle_graph
    def dequeue_many(self, n, name=None):
        """Dequeues `n` elements, batched along a new dimension 0; waits until there are `n`;
        `OutOfRangeError` once the queue is closed with fewer left."""
        with name_scope(name, f"{self._name}_DequeueMany") as scope:
            n = convert_to_tensor(n, dtype=dtypes.int32, name="n")
            out = _colocated_op("QueueDequeueManyV2", [self._queue_ref, n],
                           {"component_types": list(self._dtypes), "timeout_ms": -1}, name=scope)
        return self._outputs(out)

    @_in_handle_graph
    def size(self, name=None):
        """The number of elements in the queue (int32 scalar)."""
        return _colocated_op("QueueSizeV2", [self._queue_ref], name=name or f"{self._name}_Size")

    @_in_handle_graph
    def close(self, cancel_pending_enqueues=False, name=None):
        """Closes the queue: later enqueues fail, dequeues get what is left, then OutOfRangeError.
        With `cancel_pending_enqueues`, enqueues waiting for room fail with CancelledError."""
        return _colocated_op("QueueCloseV2", [self._queue_ref],
                        {"cancel_pending_enqueues": bool(cancel_pending_enqueues)},
                        name=name or f"{self._name}_Close")


class FIFOQueue(QueueBase):
    """`tf.FIFOQueue(capacity, dtypes, shapes=None, names=None, shared_name=None,
    name="fifo_queue")`: a first-in first-out queue of tuples of tensors, shared by every graph
    that places it on the same device under the same `shared_name`."""

    def __init__(self, capacity, dtypes, shapes=None, names=None, shared_name=None, name="fifo_queue"):
        dtypes_ = list(dtypes) if isinstance(dtypes, (list, tuple)) else [dtypes]
        if shapes is not None:
            # As in TF, a list of dimensions (even an empty one: a scalar) is the one component's shape.
            one_shape = isinstance(shapes, TensorShape) or (
                isinstance(shapes, (list, tuple)) and all(d is None or isinstance(d, int) for d in shapes))
            shapes = [shapes] if one_shape else list(shapes)
            if len(shapes) != len(dtypes_):
                raise ValueError(f"Queue shapes must have the same length as dtypes: {shapes} vs {dtypes_}")
        if names is not None:
            names = list(names) if isinstance(names, (list, tuple)) else [names]
            if len(names) != len(dtypes_):
                raise ValueError(f"Queue names must have the same length as dtypes: {names} vs {dtypes_}")
        attrs = {"component_types": [_as_dtype(t) for t in dtypes_],
                 "shapes": [as_shape(s) for s in shapes] if shapes else [],
                 "capacity": int(capacity) if capacity is not None else -1,
                 "container": "", "shared_name": shared_name or ""}
        ref = get_default_graph().create_op("FIFOQueueV2", [], attrs, name=name).outputs[0]
        super().__init__(dtypes_, shapes, names, ref)


# -- ConditionalAccumulator --------------------------------------------------------------------

ConditionalAccumulatorOp = define_op("ConditionalAccumulator", stateful=True, differentiable=False,
                                     ref_outputs=True)
ConditionalAccumulatorOp.shape_fn(_handle_shape)


def _accumulator_kernel(state_class):
    """The handle kernel of an accumulator whose state is a `state_class`."""
    def kernel(op, device):
        reduction = op.get_attr("reduction_type")
        if reduction not in ("MEAN", "SUM"):
            raise op.error(errors.InvalidArgumentError, f"reduction_type must be MEAN or SUM, got {reduction!r}")
        return _state(op, device, lambda: state_class(
            op.get_attr("shared_name") or op.name, op.get_attr("dtype"), op.get_attr("shape"), reduction))
    return kernel


ConditionalAccumulatorOp.kernel(_accumulator_kernel(AccumulatorState))

AccumulatorApplyGradient = define_op("AccumulatorApplyGradient", stateful=True, differentiable=False,
                                     ref_inputs=(0,))
AccumulatorApplyGradient.shape_fn(lambda op: [])


def _check_kind(op, state, sparse):
    if isinstance(state, SparseAccumulatorState) is not sparse:
        raise op.error(errors.InvalidArgumentError, f"Accumulator {state.name} is {'not ' if sparse else ''}"
                       f"a SparseConditionalAccumulator")


@AccumulatorApplyGradient.kernel
def _apply_kernel(op, device):
    replica = _optional_attr(op, "_replica", "")

    def apply(state, local_step, grad):
        _check_kind(op, state, sparse=False)
        state.apply(int(local_step), grad, replica)
    return apply


AccumulatorTakeGradient = define_op("AccumulatorTakeGradient", stateful=True, differentiable=False,
                                    ref_inputs=(0,), async_kernel=True)


@AccumulatorTakeGradient.shape_fn
def _take_shape(op):
    handle = op.inputs[0].op
    shape = handle.get_attr("shape") if handle.type == "ConditionalAccumulator" else unknown_shape()
    return [(op.get_attr("dtype"), shape)]


@AccumulatorTakeGradient.kernel
def _take_kernel(op, device, sparse=False):
    replica = _optional_attr(op, "_replica", "")
    timeout_ms = _optional_attr(op, "_timeout_ms", -1)
    timeout_secs = timeout_ms / 1000.0 if timeout_ms >= 0 else None

    def take(step, done, state, num_required):
        _check_kind(op, state, sparse)
        state.take(int(num_required), done, step, device.name, op.name, replica, timeout_secs)
    return take


AccumulatorNumAccumulated = define_op("AccumulatorNumAccumulated", stateful=True, differentiable=False,
                                      ref_inputs=(0,))


@AccumulatorNumAccumulated.shape_fn
def _num_shape(op):
    return [(dtypes.int32, TensorShape([]))]


@AccumulatorNumAccumulated.kernel
def _num_kernel(op, device):
    return lambda state: np.array(state.num_accumulated(), dtype=np.int32)


AccumulatorSetGlobalStep = define_op("AccumulatorSetGlobalStep", stateful=True, differentiable=False,
                                     ref_inputs=(0,))
AccumulatorSetGlobalStep.shape_fn(lambda op: [])


@AccumulatorSetGlobalStep.kernel
def _set_step_kernel(op, device):
    return lambda state, new_step: state.set_global_step(int(new_step))


# -- SparseConditionalAccumulator: the same, for IndexedSlices -------------------------------

SparseConditionalAccumulatorOp = define_op("SparseConditionalAccumulator", stateful=True, differentiable=False,
                                           ref_outputs=True)
SparseConditionalAccumulatorOp.shape_fn(_handle_shape)
SparseConditionalAccumulatorOp.kernel(_accumulator_kernel(SparseAccumulatorState))


SparseAccumulatorApplyGradient = define_op("SparseAccumulatorApplyGradient", stateful=True, differentiable=False,
                                           ref_inputs=(0,))
SparseAccumulatorApplyGradient.shape_fn(lambda op: [])


@SparseAccumulatorApplyGradient.kernel
def _sparse_apply_kernel(op, device):
    replica = _optional_attr(op, "_replica", "")
    known = op.get_attr("has_known_shape")

    def apply(state, local_step, indices, values, dense_shape):
        _check_kind(op, state, sparse=True)
        state.apply(int(local_step), (indices, values, dense_shape if known else None), replica)
    return apply


SparseAccumulatorTakeGradient = define_op("SparseAccumulatorTakeGradient", stateful=True, differentiable=False,
                                          ref_inputs=(0,), async_kernel=True)


@SparseAccumulatorTakeGradient.shape_fn
def _sparse_take_shape(op):
    handle = op.inputs[0].op
    shape = handle.get_attr("shape") if handle.type == "SparseConditionalAccumulator" else unknown_shape()
    rows = TensorShape([None]).concatenate(shape[1:]) if shape.ndims else unknown_shape()
    return [(dtypes.int64, TensorShape([None])), (op.get_attr("dtype"), rows),
            (dtypes.int64, TensorShape([shape.ndims]))]


@SparseAccumulatorTakeGradient.kernel
def _sparse_take_kernel(op, device):
    return _take_kernel(op, device, sparse=True)


FailReplicaRequests = define_op("FailReplicaRequests", stateful=True, differentiable=False, ref_inputs=(0,))
FailReplicaRequests.shape_fn(lambda op: [])


@FailReplicaRequests.kernel
def _fail_replica_kernel(op, device):
    replica = op.get_attr("replica")

    def fail(state, code, message):
        code = int(code)
        if code == errors.OK:
            state.fail_replica(replica, None)
            return
        text = message.item() if hasattr(message, "item") else message
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        state.fail_replica(replica, errors.exception_type_from_error_code(code)(None, None, text))
    return fail


def fail_replica_requests(resource, replica, code, message, name=None):
    """An op failing the waiting dequeues or takes of `replica` on `resource` (a queue or a
    `ConditionalAccumulator`) with error `code` and `message`, or, if none waits, its next one;
    code OK withdraws such a pending failure. A TensorWeave extension."""
    handle = resource._handle
    with handle.graph.as_default(), name_scope(name, "FailReplicaRequests") as scope:
        code = convert_to_tensor(code, dtype=dtypes.int32, name="code")
        message = convert_to_tensor(message, dtype=dtypes.string, name="message")
        return _colocated_op("FailReplicaRequests", [handle, code, message], {"replica": replica}, name=scope)


class ConditionalAccumulator:
    """`tf.ConditionalAccumulator(dtype, shape=None, shared_name=None,
    name="conditional_accumulator", reduction_type="MEAN")`: aggregates gradients of one step.

    `apply_grad(grad, local_step)` adds a gradient unless `local_step` is older than the
    accumulator's global step (then it is dropped and counted); `take_grad(num_required)` waits
    for `num_required` gradients, returns the mean (or sum) of the first `num_required`, clears
    the accumulator and advances its global step by one.
    """

    _HANDLE_OP = "ConditionalAccumulator"

    def __init__(self, dtype, shape=None, shared_name=None, name="conditional_accumulator",
                 reduction_type="MEAN"):
        self._dtype = dtypes.as_dtype(dtype)
        self._shape = as_shape(shape) if shape is not None else unknown_shape()
        if reduction_type not in ("MEAN", "SUM"):
            raise ValueError(f"reduction_type must be MEAN or SUM, got {reduction_type!r}")
        attrs = {"dtype": self._dtype, "shape": self._shape, "container": "", "shared_name": shared_name or "",
                 "reduction_type": reduction_type}
        self._accumulator_ref = self._handle = get_default_graph().create_op(
            self._HANDLE_OP, [], attrs, name=name).outputs[0]
        self._name = self._accumulator_ref.op.name.split("/")[-1]

    @property
    def accumulator_ref(self):
        return self._accumulator_ref

    @property
    def name(self):
        return self._accumulator_ref.op.name

    @property
    def dtype(self):
        return self._dtype

    @_in_handle_graph
    def num_accumulated(self, name=None):
        """The number of gradients accumulated since the last take (int32 scalar)."""
        return _colocated_op("AccumulatorNumAccumulated", [self._accumulator_ref],
                        name=name or f"{self._name}_NumAccumulated")

    @_in_handle_graph
    def set_global_step(self, new_global_step, name=None):
        """Sets the accumulator's global step (gradients older than it are dropped)."""
        step = _plain(convert_to_tensor(new_global_step, dtype=dtypes.int64))
        return _colocated_op("AccumulatorSetGlobalStep", [self._accumulator_ref, step],
                        name=name or f"{self._name}_SetGlobalStep")

    @_in_handle_graph
    def apply_grad(self, grad, local_step=0, name=None, replica=None):
        """Adds `grad`, computed at `local_step`, unless that step is older than the global step.
        `replica` (an extension) names the worker sending it, for `take_grad`'s timeout report."""
        grad = _plain(convert_to_tensor(grad, dtype=self._dtype))
        if not self._shape.is_compatible_with(grad.shape):
            raise ValueError(f"Shapes {self._shape} and {grad.shape} are incompatible")
        local_step = _plain(convert_to_tensor(local_step, dtype=dtypes.int64))
        attrs = {"dtype": self._dtype}
        if replica:
            attrs["_replica"] = replica
        return _colocated_op("AccumulatorApplyGradient", [self._accumulator_ref, local_step, grad],
                        attrs, name=name or f"{self._name}_ApplyGradient")

    @_in_handle_graph
    def take_grad(self, num_required, name=None, timeout_secs=None, replica=None):
        """Waits for `num_required` gradients and returns their mean (or sum); then clears the
        accumulator and increments its global step.

        Extensions: with `timeout_secs`, the op fails with `tf.errors.DeadlineExceededError` once
        that long has passed since the step's first gradient without `num_required`; the message
        names the step, the replicas that sent gradients and the known ones that did not.
        `replica` names the worker taking, for `fail_replica_requests`."""
        return _colocated_op("AccumulatorTakeGradient", *self._take_args(num_required, timeout_secs, replica),
                             name=name or f"{self._name}_TakeGradient")

    def _take_args(self, num_required, timeout_secs, replica):
        """A take op's inputs and attrs (the extensions among them only when given)."""
        attrs = {"dtype": self._dtype}
        if timeout_secs is not None:
            attrs["_timeout_ms"] = round(timeout_secs * 1000)
        if replica:
            attrs["_replica"] = replica
        return [self._accumulator_ref, convert_to_tensor(num_required, dtype=dtypes.int32)], attrs


class SparseConditionalAccumulator(ConditionalAccumulator):
    """`tf.SparseConditionalAccumulator(dtype, shape=None, shared_name=None,
    name="sparse_conditional_accumulator", reduction_type="MEAN")`: aggregates sparse gradients
    (`IndexedSlices`) of one step, as `ConditionalAccumulator` does dense ones. A take returns the
    rows any gradient touched; under MEAN each row is divided by the number of times it arrived,
    as in TF."""

    _HANDLE_OP = "SparseConditionalAccumulator"

    def __init__(self, dtype, shape=None, shared_name=None, name="sparse_conditional_accumulator",
                 reduction_type="MEAN"):
        super().__init__(dtype, shape, shared_name, name, reduction_type)

    @_in_handle_graph
    def apply_grad(self, grad_indices, grad_values, grad_shape=None, local_step=0, name=None, replica=None):
        """Adds the rows `grad_indices` of a gradient (`grad_values` holds them; `grad_shape`, if
        known, is the dense shape), unless `local_step` is older than the global step."""
        values = _plain(convert_to_tensor(grad_values, dtype=self._dtype))
        indices = array_ops.cast(convert_to_tensor(grad_indices), dtypes.int64)
        known = grad_shape is not None
        shape = array_ops.cast(convert_to_tensor(grad_shape), dtypes.int64) if known else \
            convert_to_tensor(np.zeros(0, np.int64))
        local_step = _plain(convert_to_tensor(local_step, dtype=dtypes.int64))
        attrs = {"dtype": self._dtype, "has_known_shape": known}
        if replica:
            attrs["_replica"] = replica
        return _colocated_op("SparseAccumulatorApplyGradient",
                             [self._accumulator_ref, local_step, indices, values, shape], attrs,
                             name=name or f"{self._name}_ApplyGradient")

    def apply_indexed_slices_grad(self, grad, local_step=0, name=None, replica=None):
        """`apply_grad` of an `IndexedSlices`."""
        return self.apply_grad(grad.indices, grad.values, grad.dense_shape, local_step, name=name, replica=replica)

    @_in_handle_graph
    def take_grad(self, num_required, name=None, timeout_secs=None, replica=None):
        """Waits for `num_required` gradients; returns (indices, values, dense shape) of their
        average (or sum), then clears the accumulator and increments its global step. The
        extensions `timeout_secs` and `replica` work as in `ConditionalAccumulator.take_grad`."""
        inputs, attrs = self._take_args(num_required, timeout_secs, replica)
        return tuple(_colocated_op("SparseAccumulatorTakeGradient", inputs, attrs,
                                   name=name or f"{self._name}_TakeGradient"))

    def take_indexed_slices_grad(self, num_required, name=None, timeout_secs=None, replica=None):
        """`take_grad` as an `IndexedSlices`."""
        indices, values, shape = self.take_grad(num_required, name, timeout_secs, replica)
        return IndexedSlices(values, indices, shape)
