"""The `tensorweave` command: `tensorweave server ...` runs one task of a cluster, `tensorweave
launch ...` runs a script once per task of a local cluster (see `distributed.launcher`),
`tensorweave profile TRACE` lists the costliest ops of a saved trace (`tools.profile`),
`tensorweave checkpoint inspect PATH` lists a checkpoint's variables (`tools.inspect_checkpoint`)."""

import argparse
import contextlib
import secrets
import signal
import sys
import time
from importlib import metadata

# Bad command-line input or configuration, as argparse reports it.
_USAGE_ERROR = 2
DEFAULT_MAX_RESTARTS = 3  # per task, with `launch --restart on-failure`


def _version():
    try:
        return metadata.version("tensorweave")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class _Signalled(Exception):
    def __init__(self, signum):
        super().__init__(f"signal {signum}")
        self.signum = signum


@contextlib.contextmanager
def _signals_raise():
    """Within the block, SIGINT and SIGTERM raise `_Signalled` in the main thread; once one has,
    further ones are ignored until the block ends (so children are stopped in peace)."""
    def handler(signum, frame):
        for s in signums:
            signal.signal(s, signal.SIG_IGN)
        raise _Signalled(signum)

    signums = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _fail(command, message, status=_USAGE_ERROR):
    print(f"tensorweave {command}: error: {message}", file=sys.stderr)
    return status


def _read_token(path):
    from tensorweave.distributed.transport import grpc_auth
    return grpc_auth.token_from(token_file=path)


def _server(args):
    from tensorweave.distributed.cluster import load_cluster_file
    from tensorweave.distributed.server import Server
    from tensorweave.framework import errors
    from tensorweave.runtime.config import ConfigProto

    try:
        cluster, task = load_cluster_file(args.cluster)
        job = args.job if args.job is not None else (task[0] if task else None)
        index = args.task if args.task is not None else (task[1] if task and args.job in (None, task[0]) else 0)
        # Resolved here as the server would (file, then environment), so the banner and the
        # server agree on whether it serves beyond loopback.
        token = _read_token(args.token_file)
        config = ConfigProto(cluster_token=token, tls_cert_file=args.tls_cert, tls_key_file=args.tls_key,
                             tls_ca_file=args.tls_ca)
        server = Server(cluster, job, index, config=config, data_port=args.data_port)
    except (OSError, ValueError, TypeError) as e:
        return _fail("server", e)
    except errors.UnavailableError as e:
        return _fail("server", e.message, status=1)
    try:
        with _signals_raise():
            try:
                print(f"tensorweave server: task {server.task_name} serving at "
                      f"{_served_target(server, token)}", flush=True)
                while True:
                    time.sleep(3600)  # until a signal handler raises
            except _Signalled as e:
                print(f"tensorweave server: stopping on signal {e.signum}", flush=True)
            finally:
                server.stop()
    except _Signalled:  # a second signal while stopping
        pass
    return 0


def _served_target(server, token):
    """The target clients can reach: without a cluster token the server listens on 127.0.0.1
    only, whatever host the cluster file names for it (it warns about that itself)."""
    if token is None:
        port = server.address.rpartition(":")[2]
        return f"grpc://127.0.0.1:{port}"
    return server.target


def _launch(args):
    from tensorweave.distributed.launcher import Launch

    try:
        token = _read_token(args.token_file) if args.token_file else secrets.token_hex(32)
        if args.max_restarts is not None and args.restart == "no":
            raise ValueError("--max-restarts needs --restart on-failure")
        max_restarts = DEFAULT_MAX_RESTARTS if args.max_restarts is None else args.max_restarts
        launch = Launch(args.script, args.args, ps=args.ps, workers=args.workers, token=token,
                        keep_going=args.keep_going, tls=_tls_args(args), progress=args.progress,
                        restart=args.restart, max_restarts=max_restarts)
    except (OSError, ValueError) as e:
        return _fail("launch", e)
    try:
        with _signals_raise():
            try:
                launch.start()
                return launch.wait()
            except _Signalled as e:
                return 128 + e.signum
            except OSError as e:  # the interpreter or script cannot be started
                return _fail("launch", e, status=1)
            finally:
                launch.stop()
    except _Signalled as e:  # arrived while stopping; stop() has still run to its end
        return 128 + e.signum


def _export_onnx(args):
    from tensorweave.export import onnx as onnx_export

    sources = [s for s in (args.checkpoint, args.graph, args.saved_model) if s]
    if len(sources) != 1:
        return _fail("export onnx", "give exactly one of --checkpoint, --graph and --saved-model")
    split = lambda names: [n for arg in names or () for n in arg.split(",") if n]
    try:
        onnx_export.export(sources[0], split(args.inputs), split(args.outputs), args.output)
    except (ImportError, OSError, ValueError, KeyError) as e:  # no onnx; or an unsupported op: its name and type
        return _fail("export onnx", e, status=1)
    print(f"tensorweave export onnx: wrote {args.output}", flush=True)
    return 0


def _add_export_parser(commands):
    export = commands.add_parser("export", help="export a trained graph for inference")
    formats = export.add_subparsers(dest="format", metavar="FORMAT", required=True)
    onnx = formats.add_parser("onnx", help="write an ONNX model (frozen: variables become initializers)",
                              description="Exports the ops computing --outputs from --inputs to ONNX; an op "
                              "with no ONNX translation fails the export with its name and type.")
    onnx.add_argument("--checkpoint", metavar="PREFIX", help="a tf.train.Saver checkpoint (PREFIX.meta and "
                      "PREFIX.safetensors)")
    onnx.add_argument("--graph", metavar="FILE", help="a frozen GraphDef (.pb or .pbtxt)")
    onnx.add_argument("--saved-model", metavar="DIR", help="a tf.saved_model.simple_save directory")
    onnx.add_argument("--inputs", action="append", metavar="NAMES",
                      help="input tensor names, comma-separated (default: the placeholders the outputs need)")
    onnx.add_argument("--outputs", action="append", metavar="NAMES",
                      help="output tensor names, comma-separated (required but with --saved-model, where "
                      "signature keys may be given and the default is the signature's outputs)")
    onnx.add_argument("output", metavar="OUT.onnx")
    onnx.set_defaults(run=_export_onnx)


def _profile(args):
    from tensorweave.tools.profile import format_top, load_trace

    if args.top < 1:
        return _fail("profile", f"--top must be at least 1, got {args.top}")
    try:
        model = load_trace(args.trace, by=args.by)
    except (OSError, ValueError) as e:
        return _fail("profile", e, status=1)
    print(format_top(model, args.top))
    return 0


def _checkpoint_inspect(args):
    from tensorweave.framework import errors
    from tensorweave.tools.inspect_checkpoint import describe

    try:
        print(describe(args.path, values=args.values))
    except (errors.OpError, OSError) as e:  # missing (NotFoundError) or corrupted (DataLossError)
        return _fail("checkpoint inspect", getattr(e, "message", e), status=1)
    return 0


def _add_checkpoint_parser(commands):
    checkpoint = commands.add_parser("checkpoint", help="look into tf.train.Saver checkpoints")
    actions = checkpoint.add_subparsers(dest="action", metavar="ACTION", required=True)
    inspect = actions.add_parser("inspect", help="list a checkpoint's variables, verifying its checksums",
                                 description="Lists the variables of checkpoint PATH with dtypes and shapes, "
                                 "and its global step. Every tensor's SHA-256 is verified: a corrupted "
                                 "checkpoint exits 1 naming the file and the tensor.")
    inspect.add_argument("path", metavar="PATH", help="a checkpoint prefix (e.g. ckpt/model-100) or its "
                         ".safetensors file, or a directory (its latest checkpoint)")
    inspect.add_argument("--values", action="store_true", help="also print each variable's min, max and mean")
    inspect.set_defaults(run=_checkpoint_inspect)


def _add_tls_arguments(parser):
    parser.add_argument("--tls-cert", metavar="PEM", help="this task's certificate: serve gRPC and the data "
                        "channel under TLS (with --tls-key)")
    parser.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    parser.add_argument("--tls-ca", metavar="PEM", help="CA that signs the cluster's certificates: peers "
                        "are verified against it, and clients must present a certificate (mutual TLS)")


def _tls_args(args):
    return {name: value for name, value in (("tls_cert_file", args.tls_cert), ("tls_key_file", args.tls_key),
                                            ("tls_ca_file", args.tls_ca)) if value}


def _parser():
    parser = argparse.ArgumentParser(prog="tensorweave", description="TensorWeave command-line tools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    server = commands.add_parser("server", help="run one task of a cluster (tf.train.Server) until "
                                 "SIGTERM or Ctrl-C")
    server.add_argument("--cluster", required=True, metavar="FILE",
                        help="JSON file: a ClusterSpec dict or a TF_CONFIG-shaped dict")
    server.add_argument("--job", help="job name (default: the cluster file's task, or its only job)")
    server.add_argument("--task", type=int, help="task index (default: the cluster file's task, or 0)")
    server.add_argument("--token-file", metavar="FILE", help="cluster token file (default: "
                        "$TENSORWEAVE_CLUSTER_TOKEN or $TENSORWEAVE_CLUSTER_TOKEN_FILE)")
    server.add_argument("--data-port", type=int, default=0, metavar="PORT",
                        help="port of the tensor data channel (default 0: chosen by the OS and announced "
                        "to peers over gRPC)")
    _add_tls_arguments(server)
    server.set_defaults(run=_server)

    launch = commands.add_parser("launch", help="run a script once per task of a local cluster",
                                 description="Runs SCRIPT with TF_CONFIG and TENSORWEAVE_CLUSTER_TOKEN "
                                 "set, once per task; arguments may use {job}, {task}, {ps_hosts} and "
                                 "{worker_hosts}.")
    launch.add_argument("--ps", type=int, default=1, help="number of PS tasks (default 1)")
    launch.add_argument("--workers", type=int, default=1, help="number of worker tasks (default 1)")
    launch.add_argument("--token-file", metavar="FILE",
                        help="cluster token file (default: a new random token)")
    launch.add_argument("--keep-going", action="store_true",
                        help="when a task fails, let the remaining workers finish; exit non-zero at the end")
    launch.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                        help="one progress bar for the cluster, fed by the chief's reports "
                        "(tensorweave.train.progress): auto draws it when stderr is a terminal (default)")
    launch.add_argument("--restart", choices=("no", "on-failure"), default="no",
                        help="on-failure: restart a task that exits non-zero or is killed (PS tasks too) "
                        "with the same TF_CONFIG, port and token; no: a failed task ends the launch (default)")
    launch.add_argument("--max-restarts", type=int, metavar="K", help="restarts allowed per task with "
                        f"--restart on-failure (default {DEFAULT_MAX_RESTARTS}); a task that fails once more "
                        "ends the launch with its status")
    _add_tls_arguments(launch)
    launch.add_argument("script")
    launch.add_argument("args", nargs=argparse.REMAINDER)
    launch.set_defaults(run=_launch)

    profile = commands.add_parser("profile", help="print the ops that took the most time in a saved trace",
                                  description="TRACE is a serialized RunMetadata (or StepStats) of a step run "
                                  "with RunOptions(trace_level=FULL_TRACE), or the Chrome trace JSON of "
                                  "tensorweave.tools.timeline.")
    profile.add_argument("trace", metavar="TRACE")
    profile.add_argument("--top", type=int, default=20, metavar="N", help="how many ops to list (default 20)")
    profile.add_argument("--by", choices=("name", "type"), default="name",
                         help="group by node name (default) or by op type")
    profile.set_defaults(run=_profile)

    _add_export_parser(commands)
    _add_checkpoint_parser(commands)
    return parser


def main(argv=None):
    """Parses the command line and runs the requested subcommand; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
