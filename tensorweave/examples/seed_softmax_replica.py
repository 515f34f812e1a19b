"""The seed program (`seed_softmax.py`) trained by between-graph replication on a local cluster.

    tensorweave launch --ps 1 --workers 2 tensorweave/examples/seed_softmax_replica.py \\
        [--data_dir MNIST_data/] [--steps 1000]

Every task runs this file; the launcher tells each one which task it is in `TF_CONFIG`. The PS task
holds W, b and the global step and serves them (`server.join()`). Each worker builds the same graph
with the variables placed on the PS by `replica_device_setter` and trains asynchronously on its own
order of batches (batch 100, gradient descent on the summed cross entropy, as the seed program)
until the shared global step reaches --steps. Each worker's rate is the seed program's 0.01 divided
by the number of workers, so the shared variables move about as fast as in the seed program: at
the full rate, two workers' stale updates now and then left the final accuracy below 0.85, once
at chance (0.098). The chief (worker 0) initializes the variables, the other workers wait for it,
and at the end the chief prints the test accuracy (about 0.91-0.92).
The chief reports the global step and loss to the launcher's progress bar.
"""

import argparse
import json
import os

import tensorweave as tf
from tensorweave.examples.tutorials.mnist import input_data
from tensorweave.train.progress import Progress


def main(argv=None):
    """Runs this process's task of the cluster in TF_CONFIG; the chief returns the test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="MNIST_data/", help="where MNIST is read or cached")
    parser.add_argument("--steps", type=int, default=1000, help="global steps, all workers together")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--learning_rate", type=float, default=None,
                        help="each worker's gradient descent rate (default: 0.01 / number of workers)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for the order of training batches (worker i uses seed + i)")
    parser.add_argument("--log_every", type=int, default=100, help="the chief prints the loss every N of its steps")
    args = parser.parse_args(argv)

    # Set by `tensorweave launch` (or a Kubernetes operator): {"cluster": {...}, "task": {...}}.
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    if "cluster" not in tf_config or "task" not in tf_config:
        parser.error("TF_CONFIG must name the cluster and this task; start this program with "
                     "`tensorweave launch --ps 1 --workers 2 " + parser.prog + "`")
    cluster = tf.train.ClusterSpec(tf_config["cluster"])
    job, task = tf_config["task"]["type"], int(tf_config["task"]["index"])
    server = tf.train.Server(cluster, job_name=job, task_index=task)
    if job == "ps":
        server.join()
        return None
    is_chief = task == 0
    learning_rate = args.learning_rate or 0.01 / cluster.num_tasks("worker")

    mnist = input_data.read_data_sets(args.data_dir, one_hot=True, seed=args.seed + task)

    with tf.device(tf.train.replica_device_setter(worker_device=f"/job:worker/task:{task}", cluster=cluster)):
        global_step = tf.train.get_or_create_global_step()
        x = tf.placeholder(tf.float32, [None, 784])
        W = tf.Variable(tf.zeros([784, 10]))
        b = tf.Variable(tf.zeros([10]))
        y = tf.nn.softmax(tf.matmul(x, W) + b)
        y_ = tf.placeholder(tf.float32, [None, 10])
        xent = -tf.reduce_sum(y_ * tf.log(y))
        step = tf.train.GradientDescentOptimizer(learning_rate).minimize(xent, global_step=global_step)
        correct = tf.equal(tf.argmax(y, 1), tf.argmax(y_, 1))
        accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))

    # The chief initializes the variables on the PS; the others wait until it has.
    sv = tf.train.Supervisor(is_chief=is_chief, global_step=global_step, recovery_wait_secs=1)
    # This worker's session sees the PS and itself only, so it does not depend on other workers.
    config = tf.ConfigProto(device_filters=["/job:ps", f"/job:worker/task:{task}"])
    with sv.managed_session(server.target, config=config) as sess, \
            Progress(total=args.steps, is_chief=is_chief) as bar:
        local_steps, global_steps = 0, 0
        while not sv.should_stop() and global_steps < args.steps:
            batch_xs, batch_ys = mnist.train.next_batch(args.batch_size)
            loss, _, global_steps = sess.run([xent, step, global_step], feed_dict={x: batch_xs, y_: batch_ys})
            local_steps += 1
            bar.update(global_steps, loss=loss / args.batch_size)
            if is_chief and local_steps % args.log_every == 0:
                print(f"global step {global_steps}: loss {loss / args.batch_size:.3f}")
        print(f"worker {task}: {local_steps} local steps, global step {global_steps}")
        if not is_chief:
            return None
        acc = sess.run(accuracy, feed_dict={x: mnist.test.images, y_: mnist.test.labels})
    print(f"test accuracy: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()
