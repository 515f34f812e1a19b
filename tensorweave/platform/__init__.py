"""TF1's platform modules: `tf.app` (with `tf.app.flags`), `tf.gfile`, `tf.logging`."""

from tensorweave.platform import app, flags, gfile, tf_logging

__all__ = ["app", "flags", "gfile", "tf_logging"]
