"""What TensorFlow's op schemas (its op registry) say about the attrs of our op types.

GraphDef export and import consult these tables so a GraphDef we write names exactly the attrs
TF's op of the same name declares, and a GraphDef TF wrote, default attrs stripped or not, reads
back with every attr our shape rules and kernels ask for.
"""

from tensorweave.framework import dtypes
from tensorweave.framework.tensor_shape import TensorShape

# Type attrs of TF ops whose inputs are not all of type T. Export adds a missing attr from the
# named tensor ("in0": input 0's dtype, "in-1": the last input's, "out0": output 0's, "n": the
# number of inputs, "n-1": all inputs but the last, "types": every input's dtype, "types1": every
# input's dtype but the first's). Every other op with inputs gets T = dtype of input 0; `{}` says
# TF's op declares no type attr to derive.
_TYPE_ATTRS = {
    "Cast": {},
    "Const": {},
    "NoOp": {},
    "PlaceholderWithDefault": {},
    "LogicalAnd": {},
    "LogicalOr": {},
    "LogicalNot": {},
    "IdentityN": {"T": "types"},
    "ShapeN": {"T": "in0", "N": "n"},
    "ConcatOffset": {"N": "n-1"},
    "Split": {"T": "in1"},
    "ScatterNd": {"T": "in1", "Tindices": "in0"},
    "AvgPoolGrad": {"T": "in1"},
    "Conv2DBackpropInput": {"T": "in1"},
    "StridedSliceGrad": {"T": "in-1", "Index": "in0"},
    "BroadcastTo": {"T": "in0", "Tidx": "in1"},
    "ReverseV2": {"T": "in0", "Tidx": "in1"},
    "MirrorPad": {"T": "in0", "Tpaddings": "in1"},
    "PadV2": {"T": "in0", "Tpaddings": "in1"},
    "Fill": {"T": "in1", "index_type": "in0"},
    "Range": {"Tidx": "in0"},
    "IsVariableInitialized": {"dtype": "in0"},
    "Reshape": {"T": "in0", "Tshape": "in1"},
    "ExpandDims": {"T": "in0", "Tdim": "in1"},
    "Tile": {"T": "in0", "Tmultiples": "in1"},
    "Transpose": {"T": "in0", "Tperm": "in1"},
    "ConjugateTranspose": {"T": "in0", "Tperm": "in1"},
    "Pad": {"T": "in0", "Tpaddings": "in1"},
    "Slice": {"T": "in0", "Index": "in1"},
    "StridedSlice": {"T": "in0", "Index": "in1"},
    "Gather": {"Tparams": "in0", "Tindices": "in1"},
    "GatherV2": {"Tparams": "in0", "Tindices": "in1", "Taxis": "in2"},
    "GatherNd": {"Tparams": "in0", "Tindices": "in1"},
    "ConcatV2": {"T": "in0", "Tidx": "in-1", "N": "n-1"},
    "Pack": {"T": "in0", "N": "n"},
    "AddN": {"T": "in0", "N": "n"},
    "Select": {"T": "in1"},
    "SelectV2": {"T": "in1"},
    "OneHot": {"T": "out0", "TI": "in0"},
    "InTopKV2": {"T": "in1"},
    "Any": {"Tidx": "in1"},
    "All": {"Tidx": "in1"},
    "UnsortedSegmentSum": {"T": "in0", "Tindices": "in1", "Tnumsegments": "in2"},
    "SparseSoftmaxCrossEntropyWithLogits": {"T": "in0", "Tlabels": "in1"},
    "RandomUniformInt": {"T": "in0", "Tout": "in1"},
    # Debugging: input 0 of Assert is the condition, of Print the tensor passed through.
    "Assert": {"T": "types1"},
    "Print": {"T": "in0", "U": "types1"},
    "StringFormat": {"T": "types"},
    "PrintV2": {},
    # Summaries: input 0 is the tag; AudioSummaryV2 takes float32 audio and declares no type attr.
    **{r: {"T": "in1"} for r in ("ScalarSummary", "HistogramSummary", "ImageSummary", "TensorSummaryV2")},
    "AudioSummaryV2": {},
    "MergeSummary": {"N": "n"},
    # Queues and accumulators: their type attrs are set when the op is made.
    **{r: {} for r in ("FIFOQueueV2", "QueueDequeueV2", "QueueDequeueManyV2", "QueueSizeV2", "QueueCloseV2",
                       "ConditionalAccumulator", "AccumulatorNumAccumulated", "AccumulatorSetGlobalStep",
                       "AccumulatorTakeGradient", "FailReplicaRequests", "SparseConditionalAccumulator",
                       "SparseAccumulatorTakeGradient")},
    **{r: {"Tcomponents": "types1"} for r in ("QueueEnqueueV2", "QueueEnqueueManyV2")},
    "AccumulatorApplyGradient": {"dtype": "in2"},
    "SparseAccumulatorApplyGradient": {"dtype": "in3"},
    # Sparse updates: the indices follow the gradient.
    "SparseApplyMomentum": {"T": "in0", "Tindices": "in4"},
    "SparseApplyAdagrad": {"T": "in0", "Tindices": "in4"},
    "SparseApplyRMSProp": {"T": "in0", "Tindices": "in8"},
    "SparseApplyCenteredRMSProp": {"T": "in0", "Tindices": "in9"},
    **{r: {"T": "in0", "Tindices": "in1"} for r in ("ScatterUpdate", "ScatterAdd", "ScatterSub", "ScatterMul",
                                                     "ScatterDiv", "ScatterMin", "ScatterMax")},
    **{r: {"T": "in0", "Tidx": "in1"} for r in ("Sum", "Mean", "Max", "Min", "Prod", "ArgMax", "ArgMin",
                                                 "Cumsum", "Cumprod")},
}

_MASKS = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
_CONV = {"data_format": "NHWC", "dilations": [1, 1, 1, 1], "use_cudnn_on_gpu": True, "explicit_paddings": []}
_SEEDS = {"seed": 0, "seed2": 0}

# Attrs TF may leave out of a NodeDef (written with strip_default_attrs, or by older TF) with the
# value TF's op schema gives them; import fills them in, `strip_default_attrs` removes them.
# Attrs TF added recently that our ops never read (MaxPool's explicit_paddings, MatMul's grad_a)
# are left out: filling them in would make our export unreadable to the TF versions before them.
_ATTR_DEFAULTS = {
    "MatMul": {"transpose_a": False, "transpose_b": False},
    "Cast": {"Truncate": False},
    "VariableV2": {"container": "", "shared_name": ""},
    "Assign": {"validate_shape": True, "use_locking": True},
    "AssignAdd": {"validate_shape": True, "use_locking": False},
    "AssignSub": {"validate_shape": True, "use_locking": False},
    "ApplyGradientDescent": {"use_locking": False},
    "ScatterUpdate": {"use_locking": True},
    **{r: {"use_locking": False} for r in ("ScatterAdd", "ScatterSub", "ScatterMul", "ScatterDiv", "ScatterMin",
                                           "ScatterMax")},
    "ApplyMomentum": {"use_locking": False, "use_nesterov": False},
    "SparseApplyMomentum": {"use_locking": False, "use_nesterov": False},
    "ApplyAdagrad": {"use_locking": False, "update_slots": True},
    "SparseApplyAdagrad": {"use_locking": False, "update_slots": True},
    "ApplyAdam": {"use_locking": False, "use_nesterov": False},
    **{r: {"use_locking": False} for r in ("ApplyRMSProp", "SparseApplyRMSProp", "ApplyCenteredRMSProp",
                                           "SparseApplyCenteredRMSProp")},
    "Placeholder": {"shape": TensorShape(None)},
    "_Send": {"client_terminated": False},
    "_Recv": {"client_terminated": False, "_shape": TensorShape(None)},
    **{r: {"out_type": dtypes.int32} for r in ("Shape", "ShapeN", "Size")},
    **{r: {"keep_dims": False} for r in ("Sum", "Mean", "Max", "Min", "Prod", "Any", "All")},
    **{r: {"output_type": dtypes.int64} for r in ("ArgMax", "ArgMin")},
    **{r: {"exclusive": False, "reverse": False} for r in ("Cumsum", "Cumprod")},
    **{r: dict.fromkeys(_MASKS, 0) for r in ("StridedSlice", "StridedSliceGrad")},
    "Squeeze": {"squeeze_dims": []},
    "Pack": {"axis": 0},
    "Unpack": {"axis": 0},
    "Gather": {"validate_indices": True},
    "GatherV2": {"batch_dims": 0},
    "OneHot": {"axis": -1},
    **{r: _CONV for r in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")},
    **{r: {"data_format": "NHWC"} for r in ("BiasAdd", "BiasAddGrad", "MaxPool", "MaxPoolGrad",
                                            "MaxPoolGradGrad", "AvgPool", "AvgPoolGrad")},
    "LeakyRelu": {"alpha": 0.2},
    "LeakyReluGrad": {"alpha": 0.2},
    "TopKV2": {"sorted": True},
    "ImageSummary": {"max_images": 3},
    "AudioSummaryV2": {"max_outputs": 3},
    "Assert": {"summarize": 3},
    "Print": {"message": "", "first_n": -1, "summarize": 3},
    "StringFormat": {"template": "%s", "placeholder": "%s", "summarize": 3},
    "PrintV2": {"output_stream": "stderr", "end": "\n"},
    "FIFOQueueV2": {"shapes": [], "capacity": -1, "container": "", "shared_name": ""},
    **{r: {"timeout_ms": -1} for r in ("QueueEnqueueV2", "QueueEnqueueManyV2", "QueueDequeueV2",
                                       "QueueDequeueManyV2")},
    "QueueCloseV2": {"cancel_pending_enqueues": False},
    "ConditionalAccumulator": {"container": "", "shared_name": "", "reduction_type": "MEAN"},
    "SparseConditionalAccumulator": {"container": "", "shared_name": "", "reduction_type": "MEAN"},
    **{r: _SEEDS for r in ("RandomUniform", "RandomStandardNormal", "TruncatedNormal", "RandomUniformInt",
                           "RandomShuffle")},
}

# The kind TF's schemas give attrs of these names, on every op that has one; import checks it.
_ATTR_KINDS = {
    **dict.fromkeys(("T", "dtype", "SrcT", "DstT", "out_type", "Tidx", "Tshape", "index_type", "Tparams",
                     "Tindices", "Taxis", "Tlabels", "Tperm", "Tmultiples", "Tpaddings", "Tdim", "TI", "Tout",
                     "Tlen", "Tnumsegments", "Index", "output_type"), "type"),
    "shape": "shape",
    "value": "tensor",
    **dict.fromkeys(("transpose_a", "transpose_b", "keep_dims", "validate_shape", "use_locking", "Truncate",
                     "use_nesterov", "update_slots", "use_cudnn_on_gpu", "sorted", "exclusive", "reverse",
                     "validate_indices", "cancel_pending_enqueues"), "bool"),
    **dict.fromkeys(("container", "shared_name", "data_format", "padding", "mode", "message", "template",
                     "placeholder", "output_stream", "end", "reduction_type"), "string"),
    **dict.fromkeys(("N", "axis", "batch_dims", "num", "num_split", "seed", "seed2", "max_images",
                     "max_outputs", "first_n", "summarize", "capacity", "timeout_ms") + _MASKS, "int"),
    **dict.fromkeys(("component_types", "Tcomponents"), "list(type)"),
    "shapes": "list(shape)",
    "alpha": "float",
    **dict.fromkeys(("squeeze_dims", "dilations", "strides", "ksize", "explicit_paddings"), "list(int)"),
    "_class": "list(string)",
}

# Where one op's attr differs from `_ATTR_KINDS`.
_OP_ATTR_KINDS = {"IdentityN": {"T": "list(type)"}, "Assert": {"T": "list(type)"}, "Print": {"U": "list(type)"},
                  "StringFormat": {"T": "list(type)"}}

# Attrs our ops carry that TF's op of the same name does not declare (TF rejects a NodeDef
# naming them): left out on export when they hold this value, which import fills back in.
_NOT_IN_TF = {"AssignAdd": {"validate_shape": True}, "AssignSub": {"validate_shape": True}}


def attr_kind(op_type, name):
    """The kind ("type", "list(int)", ...) TF's schema gives attr `name` of `op_type`, or None
    where these tables do not say."""
    return _OP_ATTR_KINDS.get(op_type, {}).get(name) or _ATTR_KINDS.get(name)


def attr_defaults(op_type):
    """{attr name: TF's default value} for `op_type`; the values are the caller's to keep."""
    return {name: list(v) if isinstance(v, list) else v for name, v in _ATTR_DEFAULTS.get(op_type, {}).items()}


def attrs_not_in_tf(op_type):
    """{attr name: value} of attrs `op_type` carries that TF's op lacks, left out at that value."""
    return _NOT_IN_TF.get(op_type, {})


def tf_type_attrs(op, attrs):
    """The type attrs TF's op declares that `attrs` lacks, derived from `op`'s inputs and outputs."""
    spec = _TYPE_ATTRS.get(op.type)
    if spec is None:
        return {"T": op.inputs[0].dtype} if op.inputs and "T" not in attrs else {}
    out = {}
    n = len(op.inputs)
    for name, source in spec.items():
        if name in attrs:
            continue
        if source == "n":
            out[name] = n
        elif source == "n-1":
            out[name] = n - 1
        elif source == "types":
            out[name] = [t.dtype for t in op.inputs]
        elif source == "types1":
            out[name] = [t.dtype for t in op.inputs[1:]]
        else:
            tensors = op.outputs if source.startswith("out") else op.inputs
            index = int(source[3:] if source.startswith("out") else source[2:])
            if -len(tensors) <= index < len(tensors):
                out[name] = tensors[index].dtype
    return out
