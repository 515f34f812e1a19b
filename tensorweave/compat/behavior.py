"""TF2 behaviour switches. TensorWeave always builds graphs and runs them in sessions, so
`disable_v2_behavior()` and friends are accepted and change nothing; the "enable" calls
say clearly that eager execution does not exist here."""

_EAGER_MESSAGE = ("TensorWeave runs TF1-style graphs in sessions; eager execution is not available. "
                  "Remove the call, or use tf.compat.v1.disable_v2_behavior().")


def disable_v2_behavior():
    """Accepted for TF 1.14+ programs: TensorWeave already behaves as TF1."""


def disable_eager_execution():
    """Accepted for TF 1.14+ programs: TensorWeave never executes eagerly."""


def disable_resource_variables():
    """Accepted: TensorWeave variables are TF1 reference-style variables."""


def executing_eagerly():
    return False


def enable_v2_behavior():
    raise NotImplementedError(_EAGER_MESSAGE)


def enable_eager_execution(config=None, device_policy=None, execution_mode=None):
    raise NotImplementedError(_EAGER_MESSAGE)
