"""TF1's `tf.app`: `tf.app.run()` parses the flags and calls the program's `main(argv)`."""

import sys

from tensorweave.platform import flags

_HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "--helpfull", "-?")


def usage(argv0=None, flag_values=None):
    """The program's usage text: its docstring (if any) and its flags."""
    flag_values = flags.FLAGS if flag_values is None else flag_values
    main_module = sys.modules.get("__main__")
    doc = (getattr(main_module, "__doc__", None) or "").strip()
    head = doc or f"USAGE: {argv0 or sys.argv[0]} [flags]"
    return f"{head}\n\nflags:\n{flag_values.get_help()}\n"


def run(main=None, argv=None):
    """Runs `main` (by default `__main__.main`) with the arguments left after parsing the flags.

    `argv` defaults to `sys.argv`. Unknown flags are passed on to `main` rather than rejected, as
    TF1 did. `main`'s return value becomes the exit status (`sys.exit(main(argv))`).
    """
    args = sys.argv if argv is None else argv
    if main is None:
        main = sys.modules["__main__"].main
    before_dashes = args[1:args.index("--")] if "--" in args else args[1:]
    if any(arg in _HELP_FLAGS for arg in before_dashes):
        sys.stdout.write(usage(args[0] if args else None))
        sys.exit(0)
    try:
        remaining = flags.FLAGS(args, known_only=True)
        flags.FLAGS.check_required()
    except flags.Error as e:
        sys.stderr.write(f"FATAL Flags parsing error: {e}\nPass --help to see help on flags.\n")
        sys.exit(1)
    sys.exit(main(remaining))
