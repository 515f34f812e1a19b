"""The TF1 beginners' tutorial: softmax regression on MNIST, run unchanged but for the import.

    python -m tensorweave.examples.tutorials.mnist.mnist_softmax [--data_dir DIR] [--max_steps N]
               [--sparse]

`--sparse` uses integer labels with `tf.losses.sparse_softmax_cross_entropy`, the form of the
later TF1 versions of the tutorial.
"""

import argparse
import sys

import tensorweave as tf
from tensorweave.examples.tutorials.mnist import input_data

FLAGS = None


def main(_):
    mnist = input_data.read_data_sets(FLAGS.data_dir, one_hot=not FLAGS.sparse)

    x = tf.placeholder(tf.float32, [None, 784])
    W = tf.Variable(tf.zeros([784, 10]))
    b = tf.Variable(tf.zeros([10]))
    y = tf.matmul(x, W) + b

    if FLAGS.sparse:
        y_ = tf.placeholder(tf.int64, [None])
        cross_entropy = tf.losses.sparse_softmax_cross_entropy(labels=y_, logits=y)
        correct_prediction = tf.equal(tf.argmax(y, 1), y_)
    else:
        y_ = tf.placeholder(tf.float32, [None, 10])
        cross_entropy = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=y))
        correct_prediction = tf.equal(tf.argmax(y, 1), tf.argmax(y_, 1))
    train_step = tf.train.GradientDescentOptimizer(0.5).minimize(cross_entropy)

    sess = tf.InteractiveSession()
    tf.global_variables_initializer().run()
    for _ in range(FLAGS.max_steps):
        batch_xs, batch_ys = mnist.train.next_batch(100)
        sess.run(train_step, feed_dict={x: batch_xs, y_: batch_ys})

    accuracy = tf.reduce_mean(tf.cast(correct_prediction, tf.float32))
    print("test accuracy", sess.run(accuracy, feed_dict={x: mnist.test.images, y_: mnist.test.labels}))
    sess.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data_dir", type=str, default="/tmp/tensorflow/mnist/input_data",
                        help="Directory for storing input data")
    parser.add_argument("--max_steps", type=int, default=1000)
    parser.add_argument("--sparse", action="store_true")
    FLAGS, unparsed = parser.parse_known_args()
    tf.app.run(main=main, argv=[sys.argv[0]] + unparsed)
