"""One task of the soak test: softmax MNIST under MonitoredTrainingSession, in a cluster whose
tasks are killed at random and restarted by `tensorweave launch --restart on-failure`.

    soak_train.py LOGDIR DATA_DIR LAST_STEP PID_DIR

Each start writes its pid to PID_DIR/<job>-<index> so the test can kill it. The chief (worker 0)
prints the test accuracy once the global step reaches LAST_STEP.
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


def main(logdir, data_dir, last_step, pid_dir):
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
        # soak's 15,000 asynchronous steps, which would hide what the soak is about.
        xent = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=logits))
        train = tf.train.GradientDescentOptimizer(0.5).minimize(xent, global_step=global_step)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), tf.argmax(y_, 1)), tf.float32))
    config = tf.ConfigProto(device_filters=["/job:ps", f"/job:worker/task:{index}"],
                            operation_timeout_in_ms=60_000)
    hooks = [tf.train.StopAtStepHook(last_step=last_step), tf.train.NanTensorHook(xent),
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
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
