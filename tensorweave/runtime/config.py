"""`ConfigProto`: TensorFlow's session config message, plus TensorWeave's own options.

TF's fields (`allow_soft_placement`, `log_device_placement`, `device_filters`, thread counts,
`gpu_options`, `operation_timeout_in_ms`, ...) live in the real `tensorflow.ConfigProto` message;
the options TF lacks are plain attributes beside it.
"""

from tensorboard.compat.proto import config_pb2

GPUOptions = config_pb2.GPUOptions
GraphOptions = config_pb2.GraphOptions
OptimizerOptions = config_pb2.OptimizerOptions
RunOptions = config_pb2.RunOptions
RunMetadata = config_pb2.RunMetadata

_EXTRAS = {
    "transfer_encoding": "none",   # none | bfloat16_truncate | bfloat16 | float16 | int8
    "cluster_token": None,
    "tls_cert_file": None,
    "tls_key_file": None,
    "tls_ca_file": None,
}


class ConfigProto:
    """`tf.ConfigProto(**fields)`: TF's fields plus `transfer_encoding`, `cluster_token` and TLS files."""

    def __init__(self, **kwargs):
        extras = {k: kwargs.pop(k) for k in list(kwargs) if k in _EXTRAS}
        unknown = [k for k in kwargs if k not in config_pb2.ConfigProto.DESCRIPTOR.fields_by_name]
        if unknown:
            raise ValueError(f"ConfigProto has no field(s) {unknown}; TF fields: "
                             f"{sorted(config_pb2.ConfigProto.DESCRIPTOR.fields_by_name)}, "
                             f"TensorWeave fields: {sorted(_EXTRAS)}")
        object.__setattr__(self, "_proto", config_pb2.ConfigProto(**kwargs))
        object.__setattr__(self, "_extras", {**_EXTRAS, **extras})

    @property
    def proto(self):
        """The TF `ConfigProto` message (TF's fields only)."""
        return self._proto

    def __getattr__(self, name):
        extras = object.__getattribute__(self, "_extras")
        if name in extras:
            return extras[name]
        return getattr(object.__getattribute__(self, "_proto"), name)

    def __setattr__(self, name, value):
        if name in self._extras:
            self._extras[name] = value
        else:
            setattr(self._proto, name, value)

    def SerializeToString(self):
        return self._proto.SerializeToString()

    def __repr__(self):
        extras = {k: v for k, v in self._extras.items() if v != _EXTRAS[k]}
        return f"ConfigProto({str(self._proto).strip()!r}, {extras})"


def as_config(config):
    """Accepts None, our `ConfigProto`, or TF's message; returns our `ConfigProto`."""
    if config is None:
        return ConfigProto()
    if isinstance(config, ConfigProto):
        return config
    if isinstance(config, config_pb2.ConfigProto):
        out = ConfigProto()
        out.proto.CopyFrom(config)
        return out
    raise TypeError(f"config must be a tf.ConfigProto, got {type(config).__name__}")
