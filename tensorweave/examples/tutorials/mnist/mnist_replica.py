"""TF1's distributed MNIST example: between-graph replication, asynchronous or synchronous.

Every task runs this program. A PS task serves the variables (`server.join()`); each worker builds
its own copy of the graph with the variables placed on the PS by `replica_device_setter`, and trains
until the shared global step reaches --train_steps. The chief (worker 0) initializes the variables
and, at the end, prints the test accuracy.

    tensorweave launch --ps 1 --workers 2 path/to/mnist_replica.py --data_dir DIR \\
        --job_name={job} --task_index={task} --ps_hosts={ps_hosts} --worker_hosts={worker_hosts}

or by hand, one process per task:

    python mnist_replica.py --job_name=ps --task_index=0 --ps_hosts=localhost:2222 \\
        --worker_hosts=localhost:2223,localhost:2224
    python mnist_replica.py --job_name=worker --task_index=0 ...   (and --task_index=1)

With --sync_replicas the workers train synchronously through `tf.train.SyncReplicasOptimizer`:
each update is the mean of --replicas_to_aggregate gradients (default: one per worker; fewer
makes the other workers backups). The chief starts the optimizer's queue runner, which applies
the updates. --replica_timeout_secs S (a TensorWeave extension) makes the chief fail with an error
naming the missing workers when a step's gradients are still incomplete S seconds after the first.

Softmax regression by default; --hidden_units N adds a ReLU hidden layer of N units. The chief
reports the global step and loss to the launcher's progress bar (`tensorweave.train.progress`).
"""

import argparse
import sys
import time

import tensorweave as tf
from tensorweave.examples.tutorials.mnist import input_data
from tensorweave.train.progress import Progress

FLAGS = None

IMAGE_PIXELS = 28


def build_model(hidden_units, seed):
    """Placeholders, logits and the global step of the model, on the current device scope."""
    global_step = tf.train.get_or_create_global_step()
    x = tf.placeholder(tf.float32, [None, IMAGE_PIXELS * IMAGE_PIXELS], name="x")
    y_ = tf.placeholder(tf.float32, [None, 10], name="y_")
    inputs, width = x, IMAGE_PIXELS * IMAGE_PIXELS
    if hidden_units > 0:
        hid_w = tf.Variable(tf.truncated_normal([width, hidden_units], stddev=1.0 / IMAGE_PIXELS, seed=seed),
                            name="hid_w")
        hid_b = tf.Variable(tf.zeros([hidden_units]), name="hid_b")
        inputs, width = tf.nn.relu(tf.matmul(x, hid_w) + hid_b), hidden_units
        sm_w = tf.Variable(tf.truncated_normal([width, 10], stddev=1.0 / width ** 0.5, seed=seed),
                           name="sm_w")
    else:
        sm_w = tf.Variable(tf.zeros([width, 10]), name="sm_w")
    sm_b = tf.Variable(tf.zeros([10]), name="sm_b")
    logits = tf.matmul(inputs, sm_w) + sm_b
    return x, y_, logits, global_step


def main(_):
    if FLAGS.job_name is None or FLAGS.job_name == "":
        raise ValueError("Must specify an explicit `job_name`")
    if FLAGS.task_index is None or FLAGS.task_index == "":
        raise ValueError("Must specify an explicit `task_index`")
    print("job name = %s" % FLAGS.job_name)
    print("task index = %d" % FLAGS.task_index)

    ps_spec = FLAGS.ps_hosts.split(",")
    worker_spec = FLAGS.worker_hosts.split(",")
    num_workers = len(worker_spec)
    cluster = tf.train.ClusterSpec({"ps": ps_spec, "worker": worker_spec})
    server = tf.train.Server(cluster, job_name=FLAGS.job_name, task_index=FLAGS.task_index)
    if FLAGS.job_name == "ps":
        server.join()
        return

    is_chief = FLAGS.task_index == 0
    # Each worker shuffles the training set in its own order.
    seed = None if FLAGS.seed is None else FLAGS.seed + FLAGS.task_index
    mnist = input_data.read_data_sets(FLAGS.data_dir, one_hot=True, seed=seed)
    if FLAGS.seed is not None:
        tf.set_random_seed(FLAGS.seed)

    worker_device = "/job:worker/task:%d" % FLAGS.task_index
    with tf.device(tf.train.replica_device_setter(worker_device=worker_device, ps_device="/job:ps",
                                                  cluster=cluster)):
        x, y_, logits, global_step = build_model(FLAGS.hidden_units, FLAGS.seed)
        cross_entropy = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=logits))
        opt = tf.train.GradientDescentOptimizer(FLAGS.learning_rate)
        if FLAGS.sync_replicas:
            if FLAGS.replicas_to_aggregate is None:
                replicas_to_aggregate = num_workers
            else:
                replicas_to_aggregate = FLAGS.replicas_to_aggregate
            opt = tf.train.SyncReplicasOptimizer(opt, replicas_to_aggregate=replicas_to_aggregate,
                                                 total_num_replicas=num_workers, name="mnist_sync_replicas",
                                                 replica_timeout_secs=FLAGS.replica_timeout_secs)
        train_step = opt.minimize(cross_entropy, global_step=global_step)
        if FLAGS.sync_replicas:
            local_init_op = opt.chief_init_op if is_chief else opt.local_step_init_op
            ready_for_local_init_op = opt.ready_for_local_init_op
            # The initial tokens and the chief's queue runner, which applies the updates.
            chief_queue_runner = opt.get_chief_queue_runner()
            sync_init_op = opt.get_init_tokens_op()
        correct_prediction = tf.equal(tf.argmax(logits, 1), tf.argmax(y_, 1))
        accuracy = tf.reduce_mean(tf.cast(correct_prediction, tf.float32))
        init_op = tf.global_variables_initializer()

    if FLAGS.sync_replicas:
        sv = tf.train.Supervisor(is_chief=is_chief, logdir=FLAGS.logdir, init_op=init_op,
                                 local_init_op=local_init_op, ready_for_local_init_op=ready_for_local_init_op,
                                 recovery_wait_secs=1, global_step=global_step)
    else:
        sv = tf.train.Supervisor(is_chief=is_chief, logdir=FLAGS.logdir, init_op=init_op, recovery_wait_secs=1,
                                 global_step=global_step)
    sess_config = tf.ConfigProto(allow_soft_placement=True, log_device_placement=False,
                                 device_filters=["/job:ps", "/job:worker/task:%d" % FLAGS.task_index])

    if is_chief:
        print("Worker %d: Initializing session..." % FLAGS.task_index)
    else:
        print("Worker %d: Waiting for session to be initialized..." % FLAGS.task_index)
    sess = sv.prepare_or_wait_for_session(server.target, config=sess_config)
    print("Worker %d: Session initialization complete." % FLAGS.task_index)

    if FLAGS.sync_replicas and is_chief:
        # The chief puts the initial tokens in and starts the queue runner applying the updates.
        sess.run(sync_init_op)
        sv.start_queue_runners(sess, [chief_queue_runner])

    time_begin = time.time()
    print("Training begins @ %f" % time_begin)
    local_step = 0
    progress = Progress(total=FLAGS.train_steps, is_chief=is_chief)
    while True:
        batch_xs, batch_ys = mnist.train.next_batch(FLAGS.batch_size)
        token, loss, step = sess.run([train_step, cross_entropy, global_step],
                                     feed_dict={x: batch_xs, y_: batch_ys})
        if FLAGS.sync_replicas:
            # The token this step took is the global step of the update that released it; the
            # global step read in the same run may predate that update. Stopping on the token
            # value, each worker takes exactly one token of the last update, so none waits for
            # a token that no further update will put in.
            step = token
        local_step += 1
        progress.update(step, loss=loss)
        if local_step == 1 or local_step % FLAGS.log_every == 0:
            print("Worker %d: training step %d done (global step: %d)" % (FLAGS.task_index, local_step, step))
        if step >= FLAGS.train_steps:
            break
    progress.close()
    time_end = time.time()
    print("Training ends @ %f" % time_end)
    print("Training elapsed time: %f s (%d local steps of %d workers)"
          % (time_end - time_begin, local_step, num_workers))

    if is_chief:
        print("test accuracy %g" % sess.run(accuracy, feed_dict={x: mnist.test.images, y_: mnist.test.labels}))
    sv.stop()
    sess.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data_dir", type=str, default="/tmp/mnist-data", help="Directory for storing mnist data")
    parser.add_argument("--job_name", type=str, default=None, help="job name: worker or ps")
    parser.add_argument("--task_index", type=int, default=None,
                        help="Worker task index, should be >= 0. task_index=0 is the chief worker task")
    parser.add_argument("--ps_hosts", type=str, default="localhost:2222",
                        help="Comma-separated list of hostname:port pairs")
    parser.add_argument("--worker_hosts", type=str, default="localhost:2223,localhost:2224",
                        help="Comma-separated list of hostname:port pairs")
    parser.add_argument("--hidden_units", type=int, default=0,
                        help="Number of units in the hidden layer of the NN (0: softmax regression)")
    parser.add_argument("--train_steps", type=int, default=1000, help="Number of (global) training steps")
    parser.add_argument("--batch_size", type=int, default=100, help="Training batch size")
    parser.add_argument("--learning_rate", type=float, default=0.5, help="Learning rate")
    parser.add_argument("--seed", type=int, default=None, help="Random seed (per worker: seed + task_index)")
    parser.add_argument("--logdir", type=str, default=None,
                        help="Supervisor logdir for checkpoints and summaries (default: none)")
    parser.add_argument("--sync_replicas", action="store_true",
                        help="Use the sync_replicas (synchronized replicas) mode, wherein the parameter updates "
                             "from workers are aggregated before applied to avoid stale gradients")
    parser.add_argument("--replicas_to_aggregate", type=int, default=None,
                        help="Number of replicas to aggregate before parameter update is applied (For "
                             "sync_replicas mode only; default: num_workers)")
    parser.add_argument("--replica_timeout_secs", type=float, default=None,
                        help="TensorWeave extension, sync_replicas mode: the chief fails, naming the missing "
                             "workers, when a step's gradients have not all arrived this long after the first")
    parser.add_argument("--log_every", type=int, default=100, help="Print every N local steps")
    FLAGS, unparsed = parser.parse_known_args()
    tf.app.run(main=main, argv=[sys.argv[0]] + unparsed)
