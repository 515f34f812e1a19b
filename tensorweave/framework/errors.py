"""Error classes mirroring TensorFlow's `tf.errors`, with the op and its creation site in the message."""

OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
DATA_LOSS = 15
UNAUTHENTICATED = 16


class OpError(Exception):
    """A failure while building or running a graph; `op` is the operation involved, if any."""

    error_code = UNKNOWN

    def __init__(self, node_def=None, op=None, message="", error_code=None):
        if op is not None:
            message = f"{message}\n\t [[node {op.name} (defined at {op.creation_site})]]"
        super().__init__(message)
        self.node_def = node_def
        self.op = op
        self.message = message
        if error_code is not None:
            self.error_code = error_code

    def __reduce__(self):
        return type(self), (self.node_def, None, self.message)


def _subclass(name, code, doc, bases=(OpError,)):
    cls = type(name, bases, {"error_code": code, "__doc__": doc,
                             "__init__": lambda self, node_def=None, op=None, message="", *a:
                             OpError.__init__(self, node_def, op, message, code)})
    return cls


CancelledError = _subclass("CancelledError", CANCELLED, "The operation or step was cancelled.")
UnknownError = _subclass("UnknownError", UNKNOWN, "An unknown error.")
InvalidArgumentError = _subclass("InvalidArgumentError", INVALID_ARGUMENT,
                                 "An op received an invalid argument (wrong dtype, shape or value).")
DeadlineExceededError = _subclass("DeadlineExceededError", DEADLINE_EXCEEDED, "A deadline expired.")
NotFoundError = _subclass("NotFoundError", NOT_FOUND, "A requested entity (file, node) was not found.")
AlreadyExistsError = _subclass("AlreadyExistsError", ALREADY_EXISTS, "An entity already exists.")
PermissionDeniedError = _subclass("PermissionDeniedError", PERMISSION_DENIED, "Permission denied.")
ResourceExhaustedError = _subclass("ResourceExhaustedError", RESOURCE_EXHAUSTED, "A resource ran out.")
FailedPreconditionError = _subclass("FailedPreconditionError", FAILED_PRECONDITION,
                                    "The system is not in a state to run the operation "
                                    "(e.g. an uninitialized variable).")
AbortedError = _subclass("AbortedError", ABORTED, "The operation was aborted (e.g. a peer restarted).")
OutOfRangeError = _subclass("OutOfRangeError", OUT_OF_RANGE, "Iteration past the valid range.")
UnimplementedError = _subclass("UnimplementedError", UNIMPLEMENTED, "The operation is not implemented.")
InternalError = _subclass("InternalError", INTERNAL, "An internal invariant was broken.")
UnavailableError = _subclass("UnavailableError", UNAVAILABLE, "A peer or service is unavailable.")
DataLossError = _subclass("DataLossError", DATA_LOSS, "Unrecoverable data loss or corruption.")
UnauthenticatedError = _subclass("UnauthenticatedError", UNAUTHENTICATED,
                                 "The request lacks valid authentication credentials.")

# Raised while building a graph (bad shapes, bad dtypes, bad feeds). TF1 programs catch these as ValueError
# (or TypeError for dtypes, which TF1 raised as either depending on the call path),
# newer ones as InvalidArgumentError; being both serves both.
GraphConstructionError = _subclass("GraphConstructionError", INVALID_ARGUMENT,
                                   "An op cannot be built from these inputs.",
                                   (InvalidArgumentError, ValueError))
GraphConstructionTypeError = _subclass("GraphConstructionTypeError", INVALID_ARGUMENT,
                                       "An op cannot be built from inputs of these dtypes.",
                                       (InvalidArgumentError, TypeError, ValueError))
FeedError = _subclass("FeedError", INVALID_ARGUMENT, "A fed value does not match the tensor it feeds.",
                      (InvalidArgumentError, ValueError))

_CODE_TO_CLASS = {c.error_code: c for c in (
    CancelledError, UnknownError, InvalidArgumentError, DeadlineExceededError, NotFoundError,
    AlreadyExistsError, PermissionDeniedError, ResourceExhaustedError, FailedPreconditionError,
    AbortedError, OutOfRangeError, UnimplementedError, InternalError, UnavailableError,
    DataLossError, UnauthenticatedError)}


def exception_type_from_error_code(code):
    return _CODE_TO_CLASS.get(code, UnknownError)
