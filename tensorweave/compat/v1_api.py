"""The TF1 public namespace as a table: public name -> "module:attribute" (resolved lazily).

`tensorweave`, `tensorweave.compat.v1` and the sub-namespaces (`tf.nn`, `tf.train`, ...) are all
views of these tables; nothing here runs until a name is first used.
"""

from tensorweave.compat.namespace import LazyNamespace

_F = "tensorweave.framework"
_ARR = "tensorweave.ops.array_ops"
_CONST = "tensorweave.ops.constant_op"
_CONCAT = "tensorweave.ops.concat_ops"
_SLICE = "tensorweave.ops.slicing_ops"
_GATHER = "tensorweave.ops.gather_ops"
_PAD = "tensorweave.ops.padding_ops"
_MATH = "tensorweave.ops.math_ops"
_NN = "tensorweave.ops.nn_ops"
_RED = "tensorweave.ops.reduction_ops"
_CLIP = "tensorweave.ops.clip_ops"
_CONV = "tensorweave.ops.conv_ops"
_POOL = "tensorweave.ops.pooling_ops"
_CLS = "tensorweave.ops.classification_ops"
_RND = "tensorweave.ops.random_ops"
_VAR = "tensorweave.ops.variables"
_VS = "tensorweave.ops.variable_scope"
_INIT = "tensorweave.ops.init_ops"
_STATE = "tensorweave.ops.state_ops"
_CTRL = "tensorweave.ops.control_ops"
_LOSS = "tensorweave.ops.losses"
_DBG = "tensorweave.ops.debug_ops"
_CHK = "tensorweave.ops.check_ops"
_RT = "tensorweave.runtime"


def _names(module, names):
    return {n: f"{module}:{n}" for n in names.split()}


def _renamed(module, pairs):
    return {public: f"{module}:{attr}" for public, attr in pairs.items()}


_DTYPES = _names(f"{_F}.dtypes", "float16 half float32 float64 double bfloat16 int8 int16 int32 int64 uint8 "
                 "uint16 uint32 uint64 bool string complex64 complex128 as_dtype DType")

NN = {
    **_names(_NN, "relu relu6 elu selu softplus softsign leaky_relu softmax log_softmax bias_add xw_plus_b "
             "l2_loss dropout l2_normalize moments embedding_lookup"),
    **_names(_CONV, "conv2d conv2d_backprop_input conv2d_backprop_filter"),
    **_names(_POOL, "max_pool avg_pool"),
    **_names(_CLS, "softmax_cross_entropy_with_logits softmax_cross_entropy_with_logits_v2 "
             "sparse_softmax_cross_entropy_with_logits sigmoid_cross_entropy_with_logits in_top_k top_k"),
    **_renamed(_MATH, {"sigmoid": "sigmoid", "tanh": "tanh"}),
}

LOSSES = _names(_LOSS, "sparse_softmax_cross_entropy softmax_cross_entropy sigmoid_cross_entropy "
                "mean_squared_error absolute_difference log_loss huber_loss compute_weighted_loss "
                "add_loss get_losses get_total_loss get_regularization_loss get_regularization_losses "
                "Reduction")

GFILE = _names("tensorweave.platform.gfile", "Exists MakeDirs DeleteRecursively Remove Glob IsDirectory "
               "ListDirectory Copy Rename Open GFile FastGFile Stat exists makedirs rmtree remove glob "
               "isdir listdir copy rename mkdir walk")

RANDOM = {
    **_renamed(_RND, {"normal": "random_normal", "truncated_normal": "truncated_normal",
                      "uniform": "random_uniform", "shuffle": "random_shuffle"}),
    "set_random_seed": f"{_F}.op_builder:set_random_seed",
    "set_seed": f"{_F}.op_builder:set_random_seed",
}

MATH = {
    **_names(_MATH, "add subtract multiply divide truediv floordiv floormod pow negative abs sign exp log log1p "
             "sqrt rsqrt square tanh sigmoid maximum minimum equal not_equal less less_equal greater "
             "greater_equal logical_and logical_or logical_not logical_xor add_n reciprocal "
             "squared_difference floor ceil round sin cos"),
    **_names(_RED, "reduce_sum reduce_mean reduce_max reduce_min reduce_prod reduce_any reduce_all "
             "reduce_logsumexp argmax argmin cumsum cumprod count_nonzero"),
    "top_k": f"{_CLS}:top_k",
    "in_top_k": f"{_CLS}:in_top_k",
}

ERRORS = "tensorweave.framework.errors"

_ASSERTS = ("assert_equal assert_none_equal assert_positive assert_non_negative assert_negative "
            "assert_non_positive assert_less assert_less_equal assert_greater assert_greater_equal assert_near "
            "assert_rank assert_rank_at_least assert_type")
DEBUGGING = {
    **_names(_CHK, _ASSERTS + " assert_shapes"),
    **_names(_DBG, "check_numerics assert_all_finite"),
    "Assert": f"{_DBG}:assert_",
}

ROOT = {
    **_DTYPES,
    # graph and scopes
    **_names(f"{_F}.graph", "Graph GraphKeys get_default_graph reset_default_graph get_default_session"),
    **_names(f"{_F}.op_builder", "name_scope device container control_dependencies colocate_with get_collection "
             "get_collection_ref add_to_collection add_to_collections convert_to_tensor set_random_seed "
             "register_tensor_conversion_function"),
    "Tensor": f"{_F}.tensor:Tensor",
    "Operation": f"{_F}.operation:Operation",
    "TensorShape": f"{_F}.tensor_shape:TensorShape",
    "Dimension": f"{_F}.tensor_shape:Dimension",
    "DeviceSpec": f"{_F}.device_spec:DeviceSpec",
    "import_graph_def": f"{_F}.graph_io:import_graph_def",
    "GraphDef": "tensorboard.compat.proto.graph_pb2:GraphDef",
    "Summary": "tensorboard.compat.proto.summary_pb2:Summary",
    "SummaryMetadata": "tensorboard.compat.proto.summary_pb2:SummaryMetadata",
    "HistogramProto": "tensorboard.compat.proto.summary_pb2:HistogramProto",
    "Event": "tensorboard.compat.proto.event_pb2:Event",
    "NodeDef": "tensorboard.compat.proto.node_def_pb2:NodeDef",
    "MetaGraphDef": "tensorboard.compat.proto.meta_graph_pb2:MetaGraphDef",
    "IndexedSlices": "tensorweave.framework.indexed_slices:IndexedSlices",
    "IndexedSlicesValue": "tensorweave.framework.indexed_slices:IndexedSlicesValue",
    "gradients": "tensorweave.autodiff.gradients:gradients",
    # array ops
    **_names(_CONST, "constant"),
    **_names(_ARR, "placeholder placeholder_with_default identity stop_gradient shape size rank reshape fill "
             "zeros ones zeros_like ones_like cast to_float to_int32 to_int64 to_double transpose "
             "invert_permutation shape_n identity_n"),
    **_names(_CONCAT, "expand_dims squeeze concat stack unstack split"),
    **_names(_SLICE, "slice strided_slice newaxis"),
    **_names(_GATHER, "gather gather_nd scatter_nd unsorted_segment_sum where where_v2 boolean_mask"),
    **_names(_PAD, "pad tile broadcast_to reverse reverse_v2 one_hot sequence_mask"),
    "pack": f"{_CONCAT}:stack",
    "unpack": f"{_CONCAT}:unstack",
    # math ops
    **{k: v for k, v in MATH.items()},
    **_names(_MATH, "matmul div mod scalar_mul tensordot"),
    **_names(_RED, "range"),
    **_names(_CLIP, "clip_by_value clip_by_norm clip_by_global_norm global_norm"),
    "mul": f"{_MATH}:multiply",
    "sub": f"{_MATH}:subtract",
    "neg": f"{_MATH}:negative",
    # random
    **_names(_RND, "random_normal truncated_normal random_uniform random_shuffle"),
    # variables
    **_names(_VAR, "Variable global_variables all_variables trainable_variables local_variables model_variables "
             "moving_average_variables variables_initializer global_variables_initializer "
             "initialize_all_variables local_variables_initializer initialize_local_variables "
             "report_uninitialized_variables"),
    **_names(_VS, "get_variable variable_scope get_variable_scope VariableScope AUTO_REUSE "
             "get_local_variable"),
    **_names(_STATE, "assign assign_add assign_sub is_variable_initialized"),
    **_names("tensorweave.ops.scatter_ops", "scatter_update scatter_add scatter_sub scatter_mul scatter_div "
             "scatter_min scatter_max"),
    **_names("tensorweave.ops.data_flow_ops", "FIFOQueue QueueBase ConditionalAccumulator "
             "SparseConditionalAccumulator"),
    **_names(_INIT, "zeros_initializer ones_initializer constant_initializer random_normal_initializer "
             "truncated_normal_initializer random_uniform_initializer glorot_uniform_initializer "
             "glorot_normal_initializer variance_scaling_initializer orthogonal_initializer"),
    # control
    **_names(_CTRL, "no_op group tuple"),
    # numeric debugging and printing
    **_names(_CHK, _ASSERTS),
    **_names(_DBG, "check_numerics add_check_numerics_ops verify_tensor_all_finite"),
    **_renamed(_DBG, {"Assert": "assert_", "Print": "print_legacy", "print": "print_v2"}),
    # sessions
    **_names(f"{_RT}.session", "Session InteractiveSession"),
    **_names(f"{_RT}.config", "ConfigProto GPUOptions GraphOptions OptimizerOptions RunOptions RunMetadata"),
    # v2 behaviour switches: TensorWeave is always in graph mode, so these only record intent
    **_names("tensorweave.compat.behavior", "disable_v2_behavior enable_v2_behavior disable_eager_execution "
             "enable_eager_execution executing_eagerly disable_resource_variables"),
    # sub-namespaces
    "nn": LazyNamespace("tensorweave.nn", NN),
    "losses": LazyNamespace("tensorweave.losses", LOSSES),
    "train": "tensorweave.train",
    "summary": "tensorweave.summary",
    "random": LazyNamespace("tensorweave.random", RANDOM),
    "math": LazyNamespace("tensorweave.math", MATH),
    "debugging": LazyNamespace("tensorweave.debugging", DEBUGGING),
    "debug": "tensorweave.debug",
    "gfile": LazyNamespace("tensorweave.gfile", GFILE),
    "io": LazyNamespace("tensorweave.io", {"gfile": LazyNamespace("tensorweave.io.gfile", GFILE),
                                           "write_graph": f"{_F}.graph_io:write_graph"}),
    "errors": ERRORS,
    "app": "tensorweave.platform.app",
    "flags": "tensorweave.platform.flags",
    "logging": "tensorweave.platform.tf_logging",
    "initializers": LazyNamespace("tensorweave.initializers", _renamed(_INIT, {
        "zeros": "zeros_initializer", "ones": "ones_initializer", "constant": "constant_initializer",
        "random_normal": "random_normal_initializer", "truncated_normal": "truncated_normal_initializer",
        "random_uniform": "random_uniform_initializer", "glorot_uniform": "glorot_uniform_initializer",
        "glorot_normal": "glorot_normal_initializer", "variance_scaling": "variance_scaling_initializer"})),
    "datasets": "tensorweave.datasets",
    "graph_util": LazyNamespace("tensorweave.graph_util", _names(f"{_F}.graph_util", "convert_variables_to_constants "
                                "extract_sub_graph remove_training_nodes")),
    "saved_model": "tensorweave.saved_model",
    "__version__": "tensorweave.version:__version__",
    "VERSION": "tensorweave.version:__version__",
}
ROOT["initializers"]._table["global_variables"] = f"{_VAR}:global_variables_initializer"
ROOT["compat"] = "tensorweave.compat"
