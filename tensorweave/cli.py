"""The `tensorweave` command."""

import argparse
from importlib import metadata


def _version():
    try:
        return metadata.version("tensorweave")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv=None):
    """Parses the command line and runs the requested subcommand; returns the exit status."""
    parser = argparse.ArgumentParser(prog="tensorweave", description="TensorWeave command-line tools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
