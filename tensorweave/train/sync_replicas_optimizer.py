"""`tf.train.SyncReplicasOptimizer`: synchronous data-parallel training with backup workers.

As in TF1: every worker pushes its gradients into per-variable `ConditionalAccumulator`s that sit
with the variables on the parameter servers, tagged with the worker's `local_step`. The chief's
queue runner takes `replicas_to_aggregate` gradients from each accumulator (the mean of the first
ones to arrive; gradients from an older step are dropped), applies them with the wrapped optimizer,
and puts one token per replica into a token queue on the global step's device. A worker waits for
a token after pushing its gradients; the token carries the new global step, which becomes its
`local_step`. With `total_num_replicas > replicas_to_aggregate` the extra workers are backups: a
slow or dead worker does not hold up an update, and its late gradient is dropped as stale.

    opt = tf.train.SyncReplicasOptimizer(tf.train.GradientDescentOptimizer(0.1),
                                         replicas_to_aggregate=2, total_num_replicas=3)
    train_op = opt.minimize(loss, global_step=global_step)
    hook = opt.make_session_run_hook(is_chief)

TensorWeave extension: `replica_timeout_secs`. Each gradient is tagged with the worker device it
comes from. With a timeout, a take that has waited that long since its step's first gradient
fails with `tf.errors.DeadlineExceededError` naming the step, how many of the gradients arrived,
the replicas that sent them and the known replicas that did not. The chief's queue runner reports
it to the coordinator and fails the chief's own waiting (or next) token dequeue with it, so the
chief's training call ends with that error. Only the chief's requests are failed: the other
workers keep waiting on the token queue, which outlives a restarted chief (its `chief_init_op`
withdraws failures left for it). When training ends (`Supervisor.stop`, the hook's `end`), the
chief's queue runner stops waiting for gradients no worker will send.
"""

from tensorweave.framework import dtypes, errors
from tensorweave.framework.graph import GraphKeys
from tensorweave.framework.indexed_slices import IndexedSlices
from tensorweave.framework.op_builder import control_dependencies, convert_to_tensor, name_scope
from tensorweave.ops import array_ops, control_ops, state_ops, variables
from tensorweave.ops.data_flow_ops import (ConditionalAccumulator, FIFOQueue, SparseConditionalAccumulator,
                                            fail_replica_requests)
from tensorweave.platform import tf_logging as logging
from tensorweave.train.optimizer import Optimizer
from tensorweave.train.queue_runner import QueueRunner
from tensorweave.train.session_run_hook import SessionRunHook


class SyncReplicasOptimizer(Optimizer):
    """`tf.train.SyncReplicasOptimizer(opt, replicas_to_aggregate, total_num_replicas=None,
    variable_averages=None, variables_to_average=None, use_locking=False, name="sync_replicas",
    replica_timeout_secs=None)`.

    After `apply_gradients` (or `minimize`, which needs a `global_step`): `chief_init_op`,
    `local_step_init_op`, `ready_for_local_init_op`, `get_chief_queue_runner()`,
    `get_init_tokens_op(num_tokens=-1)` and `make_session_run_hook(is_chief, num_tokens=-1)`.
    Sparse gradients are aggregated densely. `replica_timeout_secs` (an extension; None waits
    forever, as TF) bounds the chief's wait for the gradients of a step (see the module doc).
    """

    def __init__(self, opt, replicas_to_aggregate, total_num_replicas=None, variable_averages=None,
                 variables_to_average=None, use_locking=False, name="sync_replicas", replica_timeout_secs=None):
        if total_num_replicas is None:
            total_num_replicas = replicas_to_aggregate
        super().__init__(use_locking, name)
        logging.info("SyncReplicasV2: replicas_to_aggregate=%s; total_num_replicas=%s",
                     replicas_to_aggregate, total_num_replicas)
        self._opt = opt
        self._replicas_to_aggregate = replicas_to_aggregate
        self._total_num_replicas = total_num_replicas
        self._tokens_per_step = max(total_num_replicas, replicas_to_aggregate)
        self._variable_averages = variable_averages
        self._variables_to_average = variables_to_average
        if replica_timeout_secs is not None and replica_timeout_secs <= 0:
            raise ValueError(f"replica_timeout_secs must be positive or None, got {replica_timeout_secs}")
        self._replica_timeout_secs = replica_timeout_secs
        self._gradients_applied = False
        self._global_step = None
        self._sync_token_queue = None
        self._chief_queue_runner = None
        self._accumulator_list = []
        self._local_step = None
        self.local_step_init_op = None
        self.chief_init_op = None
        self.ready_for_local_init_op = None

    def compute_gradients(self, *args, **kwargs):
        """The wrapped optimizer's gradients (aggregation happens in `apply_gradients`)."""
        return self._opt.compute_gradients(*args, **kwargs)

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """Pushes the gradients into the accumulators, then waits for the next token; returns
        the worker's train op. The update itself runs in the chief's queue runner."""
        if not grads_and_vars:
            raise ValueError("Must supply at least one variable")
        if global_step is None:
            raise ValueError("Global step is required to check staleness")
        self._global_step = global_step
        graph = global_step.graph
        train_ops, aggregated_grad, var_list = [], [], []

        # The local step stays on the worker: on the device an op made here gets (TF colocates it
        # with such an op; a colocation with an op pruned from a partition would not import).
        local_anchor = control_ops.no_op()
        with graph.device(None), graph.device(local_anchor.device or None):
            self._local_step = variables.Variable(
                initial_value=0, trainable=False, collections=[GraphKeys.LOCAL_VARIABLES],
                dtype=global_step.dtype, name="sync_rep_local_step")
        # The replica this graph pushes for: the worker device, named in each request.
        replica = local_anchor.device or ""
        self.local_step_init_op = state_ops.assign(self._local_step, global_step)
        chief_init_ops = [self.local_step_init_op]
        self.ready_for_local_init_op = variables.report_uninitialized_variables(variables.global_variables())

        with name_scope(None, self._name):
            for grad, var in grads_and_vars:
                var_list.append(var)
                with graph.device(var.device):
                    if grad is None:
                        aggregated_grad.append(None)
                        continue
                    sparse = isinstance(grad, IndexedSlices)  # then only the rows travel, as in TF
                    grad_accum = (SparseConditionalAccumulator if sparse else ConditionalAccumulator)(
                        grad.dtype, shape=var.get_shape(), shared_name=var.name + "/grad_accum")
                    apply = grad_accum.apply_indexed_slices_grad if sparse else grad_accum.apply_grad
                    take = grad_accum.take_indexed_slices_grad if sparse else grad_accum.take_grad
                    train_ops.append(apply(grad, local_step=self._local_step, replica=replica))
                    aggregated_grad.append(take(self._replicas_to_aggregate, timeout_secs=self._replica_timeout_secs,
                                                replica=replica))
                    self._accumulator_list.append((grad_accum, var.device))

            with graph.device(global_step.device), graph.name_scope(None):
                update_op = self._opt.apply_gradients(list(zip(aggregated_grad, var_list, strict=True)),
                                                      global_step)
                sync_token_queue = FIFOQueue(-1, global_step.dtype, shapes=(), name="sync_token_q",
                                             shared_name="sync_token_q")
                self._sync_token_queue = sync_token_queue
                # The chief's queue runner closes this queue when it stops, never the token queue,
                # which must outlive a restarted chief.
                dummy_queue = FIFOQueue(1, dtypes.int32, shapes=(), name="dummy_queue", shared_name="dummy_queue")

            with graph.device(global_step.device), graph.name_scope(None):
                with control_dependencies(train_ops):
                    token = sync_token_queue.dequeue(replica=replica)
                train_op = state_ops.assign(self._local_step, token)
                with control_dependencies([update_op]):
                    # A read made here, after the update: the snapshot `global_step.value()` may
                    # have been read before it.
                    tokens = array_ops.fill([self._tokens_per_step], array_ops.identity(global_step._ref()))
                    sync_op = sync_token_queue.enqueue_many((tokens,))
                if self._variable_averages is not None:
                    with control_dependencies([sync_op]), name_scope(None, "sync_replicas_avg"):
                        sync_op = self._variable_averages.apply(self._variables_to_average)
                # Fed by the chief's queue runner with the error that ended it.
                code = array_ops.placeholder_with_default(
                    convert_to_tensor(errors.CANCELLED, dtype=dtypes.int32), [], name="chief_error_code")
                message = array_ops.placeholder_with_default(
                    convert_to_tensor("The chief's queue runner stopped", dtype=dtypes.string), [],
                    name="chief_error_message")
                fail_chief_step = fail_replica_requests(sync_token_queue, replica, code, message,
                                                        name="fail_chief_token_dequeue")
                chief_init_ops.append(fail_replica_requests(sync_token_queue, replica, errors.OK, "",
                                                            name="clear_chief_token_failure"))

            abandon_ops = []
            for accum, device in self._accumulator_list:
                with graph.device(device):
                    chief_init_ops.append(accum.set_global_step(global_step.value(), name="SetGlobalStep"))
                    chief_init_ops.append(fail_replica_requests(accum, replica, errors.OK, "",
                                                                name="ClearChiefTakeFailure"))
                    abandon_ops.append(fail_replica_requests(
                        accum, replica, errors.CANCELLED, "Training ended: the chief stopped waiting for gradients",
                        name="AbandonChiefTake"))
            self._chief_queue_runner = _ChiefQueueRunner(
                dummy_queue, [sync_op], fail_step_op=fail_chief_step, code=code, message=message,
                abandon_op=control_ops.group(*abandon_ops, name="abandon_chief_takes"))
            self.chief_init_op = control_ops.group(*chief_init_ops)
            self._gradients_applied = True
            return train_op

    def get_chief_queue_runner(self):
        """The queue runner the chief runs: it applies each aggregated update and hands out tokens."""
        if not self._gradients_applied:
            raise ValueError("Should be called after apply_gradients().")
        return self._chief_queue_runner

    def get_slot(self, *args, **kwargs):
        return self._opt.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._opt.get_slot_names(*args, **kwargs)

    def variables(self):
        return self._opt.variables()

    def get_init_tokens_op(self, num_tokens=-1):
        """An op putting `num_tokens` tokens (default `replicas_to_aggregate`) in the token queue,
        for the chief to run once so the workers can start the first step."""
        if not self._gradients_applied:
            raise ValueError("get_init_tokens_op() should be called after apply_gradients().")
        tokens_needed = self._replicas_to_aggregate - self._total_num_replicas
        if num_tokens == -1:
            num_tokens = self._replicas_to_aggregate
        elif num_tokens < tokens_needed:
            raise ValueError(f"Too few tokens to finish the first step: {num_tokens} (given) vs "
                             f"{tokens_needed} (needed)")
        graph = self._global_step.graph
        with graph.as_default():
            if num_tokens <= 0:
                return control_ops.no_op(name="no_init_tokens")
            with graph.device(self._global_step.device), graph.name_scope(None):
                tokens = array_ops.fill([num_tokens], self._global_step.value())
                return self._sync_token_queue.enqueue_many((tokens,))

    def make_session_run_hook(self, is_chief, num_tokens=-1):
        """A hook for `MonitoredTrainingSession` that initializes the local step, puts the
        initial tokens in (chief) and starts the chief's queue runner."""
        return _SyncReplicasOptimizerHook(self, is_chief, num_tokens)


class _SyncReplicasOptimizerHook(SessionRunHook):
    def __init__(self, sync_optimizer, is_chief, num_tokens):
        self._sync_optimizer = sync_optimizer
        self._is_chief = is_chief
        self._num_tokens = num_tokens

    def begin(self):
        opt = self._sync_optimizer
        if not opt._gradients_applied:
            raise ValueError("SyncReplicasOptimizer.apply_gradient should be called before using the hook.")
        self._ready_for_local_init_op = opt.ready_for_local_init_op
        if self._is_chief:
            self._local_init_op = opt.chief_init_op
            self._q_runner = opt.get_chief_queue_runner()
            self._init_tokens_op = opt.get_init_tokens_op(self._num_tokens)
        else:
            self._local_init_op = opt.local_step_init_op
            self._q_runner = None
            self._init_tokens_op = None

    def after_create_session(self, session, coord):
        not_ready = session.run(self._ready_for_local_init_op)
        if len(not_ready):
            raise RuntimeError(f"Init operations did not make model ready for SyncReplicasOptimizer local_init. "
                               f"Init op: {self._local_init_op.name}, error: Variables not initialized: "
                               f"{', '.join(v.decode() if isinstance(v, bytes) else str(v) for v in not_ready)}")
        session.run(self._local_init_op)
        if self._init_tokens_op is not None:
            session.run(self._init_tokens_op)
        if self._q_runner is not None:
            self._q_runner.create_threads(session, coord=coord, daemon=True, start=True)

    def end(self, session):
        if self._q_runner is not None:
            self._q_runner.abandon_pending_runs(session)


class _ChiefQueueRunner(QueueRunner):
    """The chief's queue runner. When its update fails (a take timed out), it fails the chief's
    own waiting token dequeue with that error; `abandon_pending_runs` ends its wait for gradients."""

    def __init__(self, queue, enqueue_ops, fail_step_op, code, message, abandon_op):
        super().__init__(queue, enqueue_ops)
        self._fail_step_op, self._code, self._message = fail_step_op, code, message
        self._abandon_op = abandon_op

    def _on_failure(self, sess, error):
        code = getattr(error, "error_code", errors.UNKNOWN)
        message = getattr(error, "message", None) or str(error)
        try:
            sess.run(self._fail_step_op, {self._code: code, self._message: message})
        except Exception as e:  # noqa: BLE001 - the session may be gone; the coordinator has the error
            logging.warning("Could not fail the chief's waiting step: %s", e)

    def abandon_pending_runs(self, sess):
        """Fails the runner's waiting takes (or its next) with CancelledError, which ends it."""
        try:
            sess.run(self._abandon_op)
        except Exception as e:  # noqa: BLE001 - the session may be gone already
            logging.vlog(1, "Ignored exception while abandoning the chief's takes: %s", e)
