"""The program from the 2016 talk: softmax regression on MNIST, written as a TF1 user writes it.

    python -m tensorweave.examples.seed_softmax [--data_dir MNIST_data/] [--steps 1000]

Trains 1000 steps of batch 100 with gradient descent, showing a progress bar, then prints the
test accuracy (about 0.91-0.92).
"""

import argparse

import tensorweave as tf
from tensorweave.examples.tutorials.mnist import input_data
from tensorweave.train.progress import Progress


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="MNIST_data/", help="where MNIST is read or cached")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0, help="seed for the order of training batches")
    args = parser.parse_args(argv)

    mnist = input_data.read_data_sets(args.data_dir, one_hot=True, seed=args.seed)

    x = tf.placeholder(tf.float32, [None, 784])
    W = tf.Variable(tf.zeros([784, 10]))
    b = tf.Variable(tf.zeros([10]))
    y = tf.nn.softmax(tf.matmul(x, W) + b)
    y_ = tf.placeholder(tf.float32, [None, 10])
    xent = -tf.reduce_sum(y_ * tf.log(y))
    step = tf.train.GradientDescentOptimizer(args.learning_rate).minimize(xent)
    correct = tf.equal(tf.argmax(y, 1), tf.argmax(y_, 1))
    accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))

    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        with Progress(total=args.steps) as bar:
            for i in range(args.steps):
                batch_xs, batch_ys = mnist.train.next_batch(args.batch_size)
                if i % 50 == 0:
                    loss, _ = sess.run([xent, step], feed_dict={x: batch_xs, y_: batch_ys})
                    bar.update(i + 1, loss=loss / args.batch_size)
                else:
                    sess.run(step, feed_dict={x: batch_xs, y_: batch_ys})
                    bar.update(i + 1)
        acc = sess.run(accuracy, feed_dict={x: mnist.test.images, y_: mnist.test.labels})
    print(f"test accuracy: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()
