"""One task of the soak test: softmax MNIST under MonitoredTrainingSession, in a cluster whose
tasks are killed at random and restarted by `tensorweave launch --restart on-failure`.

    soak_train.py LOGDIR DATA_DIR MIN_STEPS PID_DIR STOP_FILE

Each start writes its pid to PID_DIR/<job>-<index> so the test can kill it. Training goes on
until the global step has reached MIN_STEPS and STOP_FILE exists (the test makes it when its
minute of kills is over, so a faster machine cannot end the soak early); the chief (worker 0)
then prints the test accuracy.
"""

import json
import os
import sys

import tensorweave as tf
from tensorweave.examples.tutorials.mnist import input_data


class _Report(tf.train.SessionRunHook):
    """Prints the global step and |W| whenever a session is (re)created, for the soak's log."""

    def __init__(self, index, global_step, weights):
        self._index, self._global_step, self._weights = index, global_step, weights
        self._norm = tf.reduce_sum(tf.abs(weights))

    def after_create_session(self, session, coord):
        step, norm = session.run([self._global_step, self._norm])
        print(f"session created on worker {self._index}: global step {step}, |W| {norm:.1f}", flush=True)


class _StopAfter(tf.train.SessionRunHook):
    """Requests a stop once the global step has reached `min_steps` and `stop_file` exists."""

    def __init__(self, global_step, min_steps, stop_file):
        self._global_step, self._min_steps, self._stop_file = global_step, min_steps, stop_file

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(self._global_step)

    def after_run(self, run_context, run_values):
        if run_values.results >= self._min_steps and os.path.exists(self._stop_file):
            run_context.request_stop()


def main(logdir, data_dir, min_steps, pid_dir, stop_file):
    task = json.loads(os.environ["TF_CONFIG"])
    job, index = task["task"]["type"], int(task["task"]["index"])
    pid_file = os.path.join(pid_dir, f"{job}-{index}")
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
    cluster = tf.train.ClusterSpec(task["cluster"])
    server = tf.train.Server(cluster, job_name=job, task_index=index)
    if job == "ps":
        server.join()
        return
    mnist = input_data.read_data_sets(data_dir, one_hot=True, seed=index)
    with tf.device(tf.train.replica_device_setter(worker_device=f"/job:worker/task:{index}", cluster=cluster)):
        global_step = tf.train.get_or_create_global_step()
        x = tf.placeholder(tf.float32, [None, 784])
        y_ = tf.placeholder(tf.float32, [None, 10])
        W = tf.Variable(tf.zeros([784, 10]))
        b = tf.Variable(tf.zeros([10]))
        logits = tf.matmul(x, W) + b
        # The stable form: the tutorial's -sum(y_ * log(softmax)) reaches log(0) = NaN within the
        # soak's asynchronous steps (15,000 and more), which would hide what the soak is about.
        xent = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=logits))
        train = tf.train.GradientDescentOptimizer(0.5).minimize(xent, global_step=global_step)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), tf.argmax(y_, 1)), tf.float32))
    config = tf.ConfigProto(device_filters=["/job:ps", f"/job:worker/task:{index}"],
                            operation_timeout_in_ms=60_000)
    hooks = [_StopAfter(global_step, min_steps, stop_file), tf.train.NanTensorHook(xent),
             _Report(index, global_step, W)]
    with tf.train.MonitoredTrainingSession(master=server.target, is_chief=index == 0, checkpoint_dir=logdir,
                                           save_checkpoint_steps=200, save_summaries_steps=0,
                                           log_step_count_steps=0, hooks=hooks, config=config,
                                           max_wait_secs=120) as sess:
        while not sess.should_stop():
            xs, ys = mnist.train.next_batch(100)
            sess.run(train, {x: xs, y_: ys})
    if index == 0:
        with tf.Session(server.target, config=config) as plain:
            acc = plain.run(accuracy, {x: mnist.test.images, y_: mnist.test.labels})
        print(f"test accuracy: {acc:.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
