"""Command-line flags as TF1's `tf.app.flags` (an absl-style subset).

    flags = tf.app.flags
    flags.DEFINE_integer("batch_size", 100, "Examples per step.")
    FLAGS = flags.FLAGS
    ... FLAGS.batch_size ...

`--name=value`, `--name value`, `-name=value`, booleans as `--name`, `--noname` or
`--name=true|false`; `--` ends the flags. The first read of any flag parses `sys.argv` if nothing
parsed it before. Unknown flags are left in the remaining arguments rather than rejected, so
programs run under launchers that add their own (Jupyter's `-f`, cluster schedulers).
"""

import sys

__all__ = [
    "FLAGS", "FlagValues", "Flag", "Error", "IllegalFlagValueError", "DuplicateFlagError",
    "UnrecognizedFlagError", "DEFINE", "DEFINE_string", "DEFINE_integer", "DEFINE_float",
    "DEFINE_boolean", "DEFINE_bool", "DEFINE_enum", "DEFINE_list", "mark_flag_as_required",
    "mark_flags_as_required",
]


class Error(Exception):
    """Base class of flag errors."""


class IllegalFlagValueError(Error):
    """A flag was given a value that its type does not accept."""


class DuplicateFlagError(Error):
    """A flag name was defined twice, from two different places."""


class UnrecognizedFlagError(Error, AttributeError):
    """An undefined flag was read or assigned."""


_TRUE = ("true", "t", "1", "yes", "y")
_FALSE = ("false", "f", "0", "no", "n")


def _parse_bool(text):
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


def _parse_int(text):
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    text = str(text).strip()
    for base in (10, 0):  # 0 also reads 0x1f, 0o17, 0b101
        try:
            return int(text, base)
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not an integer")


def _parse_list(text):
    if isinstance(text, (list, tuple)):
        return [str(item) for item in text]
    text = str(text).strip()
    return [item.strip() for item in text.split(",")] if text else []


class Flag:
    """One flag: its name, type, default, help text and current value."""

    def __init__(self, name, default, help, kind, parse, enum_values=None, lower_bound=None,
                 upper_bound=None, defined_at=None):
        self.name = name
        self.help = help
        self.kind = kind
        self.parse = parse
        self.enum_values = list(enum_values) if enum_values is not None else None
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self.defined_at = defined_at
        self.default = None if default is None else self.convert(default)
        self.value = self.default
        self.present = False

    @property
    def boolean(self):
        return self.kind == "bool"

    def convert(self, text):
        """The flag's value for `text`; raises IllegalFlagValueError naming the flag."""
        try:
            value = self.parse(text)
        except (TypeError, ValueError) as e:
            raise IllegalFlagValueError(f"flag --{self.name}={text}: {e}") from None
        if self.enum_values is not None and value not in self.enum_values:
            raise IllegalFlagValueError(
                f"flag --{self.name}={text}: value should be one of <{'|'.join(self.enum_values)}>")
        if self.lower_bound is not None and value < self.lower_bound:
            raise IllegalFlagValueError(f"flag --{self.name}={text}: must be >= {self.lower_bound}")
        if self.upper_bound is not None and value > self.upper_bound:
            raise IllegalFlagValueError(f"flag --{self.name}={text}: must be <= {self.upper_bound}")
        return value

    def usage(self):
        """This flag's entry in the help text."""
        choices = f" <{'|'.join(self.enum_values)}>" if self.enum_values else ""
        return f"  --{self.name}:{choices} {self.help or ''}\n    (default: {self.default!r})"


class FlagValues:
    """The set of defined flags; read a flag's value as an attribute (`FLAGS.learning_rate`)."""

    def __init__(self):
        object.__setattr__(self, "_flags", {})
        object.__setattr__(self, "_parsed", False)
        object.__setattr__(self, "_required", [])

    # -- definition ---------------------------------------------------------------------------

    def register(self, flag):
        """Adds `flag`; a second definition of its name from elsewhere raises DuplicateFlagError."""
        old = self._flags.get(flag.name)
        if old is not None and old.defined_at != flag.defined_at:
            raise DuplicateFlagError(f"flag --{flag.name} defined at {flag.defined_at} was already "
                                     f"defined at {old.defined_at}")
        self._flags[flag.name] = flag
        return flag

    def mark_as_required(self, name):
        """Makes `check_required` fail while flag `name` is None."""
        self._required.append(name)

    # -- parsing --------------------------------------------------------------------------------

    def __call__(self, argv, known_only=True):
        """Parses `argv` (program name first) and returns the program name plus what is left.

        With `known_only=False` an unknown flag raises UnrecognizedFlagError instead.
        """
        argv = list(argv)
        if not argv:
            raise Error("argv must hold at least the program name")
        rest = []
        args = iter(argv[1:])
        for arg in args:
            if arg == "--":
                rest.extend(args)
                break
            if not arg.startswith("-") or arg == "-":
                rest.append(arg)
                continue
            name, has_value, value = arg.lstrip("-").partition("=")
            flag = self._flags.get(name)
            if flag is None and not has_value and name.startswith("no"):
                negated = self._flags.get(name[2:])
                if negated is not None and negated.boolean:
                    negated.value, negated.present = False, True
                    continue
            if flag is None:
                if not known_only:
                    raise UnrecognizedFlagError(f"unknown command line flag '{name}'")
                rest.append(arg)
                continue
            if not has_value:
                if flag.boolean:
                    value = "true"
                else:
                    value = next(args, None)
                    if value is None:
                        raise IllegalFlagValueError(f"flag --{name} needs a value")
            flag.value, flag.present = flag.convert(value), True
        object.__setattr__(self, "_parsed", True)
        return argv[:1] + rest

    def is_parsed(self):
        """True once argv was parsed (explicitly or by a first read)."""
        return self._parsed

    def mark_as_parsed(self):
        """Treats argv as parsed: reads return the current values without parsing sys.argv."""
        object.__setattr__(self, "_parsed", True)

    def unparse_flags(self):
        """Restores every flag to its default and forgets that argv was parsed."""
        for flag in self._flags.values():
            flag.value, flag.present = flag.default, False
        object.__setattr__(self, "_parsed", False)

    def _parse_flags(self, args=None):
        """TF 1.4's spelling of `FLAGS(sys.argv)`, still found in older programs."""
        return self(sys.argv if args is None else [sys.argv[0]] + list(args))[1:]

    def check_required(self):
        """Raises IllegalFlagValueError when a required flag is still None."""
        for name in self._required:
            if name in self._flags and self._flags[name].value is None:
                raise IllegalFlagValueError(f"flag --{name} must have a value other than None")

    # -- values ---------------------------------------------------------------------------------

    def __getattr__(self, name):
        flags = object.__getattribute__(self, "_flags")
        if name not in flags:
            raise AttributeError(name)
        if not object.__getattribute__(self, "_parsed"):
            self(sys.argv)
        return flags[name].value

    def __setattr__(self, name, value):
        flag = self._flags.get(name)
        if flag is None:
            raise UnrecognizedFlagError(f"unknown flag '{name}'")
        flag.value = value

    def __contains__(self, name):
        return name in self._flags

    def __iter__(self):
        return iter(list(self._flags))

    def __len__(self):
        return len(self._flags)

    def __getitem__(self, name):
        """The `Flag` object named `name`."""
        return self._flags[name]

    def flag_values_dict(self):
        """A dict of every flag's name and current value."""
        return {name: flag.value for name, flag in self._flags.items()}

    def get_flag_value(self, name, default):
        """The value of flag `name`, or `default` if no such flag is defined."""
        flag = self._flags.get(name)
        return default if flag is None else flag.value

    def get_help(self):
        """One usage entry per flag, sorted by name."""
        return "\n".join(self._flags[name].usage() for name in sorted(self._flags))

    def __repr__(self):
        return f"<FlagValues {self.flag_values_dict()!r}>"


FLAGS = FlagValues()


def _caller():
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "<unknown>"


def _define(kind, parse, name, default, help, flag_values, **extra):
    flag = Flag(name, default, help, kind, parse, defined_at=_caller(), **extra)
    # Defined after argv was parsed, a flag keeps its default until the next parse, as in absl.
    flag_values.register(flag)
    return flag


def DEFINE(parser, name, default, help, flag_values=FLAGS, **kwargs):
    """Defines a flag whose text is turned into a value by `parser` (a callable)."""
    return _define("custom", parser, name, default, help, flag_values, **kwargs)


def DEFINE_string(name=None, default=None, help=None, flag_values=FLAGS, **kwargs):
    """Defines a string flag. TF 1.4's keywords (flag_name, default_value, docstring) also work."""
    name, default, help = _legacy(name, default, help, kwargs)
    return _define("string", str, name, default, help, flag_values)


def DEFINE_integer(name=None, default=None, help=None, lower_bound=None, upper_bound=None,
                   flag_values=FLAGS, **kwargs):
    """Defines an integer flag, optionally bounded."""
    name, default, help = _legacy(name, default, help, kwargs)
    return _define("int", _parse_int, name, default, help, flag_values,
                   lower_bound=lower_bound, upper_bound=upper_bound)


def DEFINE_float(name=None, default=None, help=None, lower_bound=None, upper_bound=None,
                 flag_values=FLAGS, **kwargs):
    """Defines a float flag, optionally bounded."""
    name, default, help = _legacy(name, default, help, kwargs)
    return _define("float", float, name, default, help, flag_values,
                   lower_bound=lower_bound, upper_bound=upper_bound)


def DEFINE_boolean(name=None, default=None, help=None, flag_values=FLAGS, **kwargs):
    """Defines a boolean flag: `--name`, `--noname`, `--name=true|false`."""
    name, default, help = _legacy(name, default, help, kwargs)
    return _define("bool", _parse_bool, name, default, help, flag_values)


DEFINE_bool = DEFINE_boolean


def DEFINE_enum(name=None, default=None, enum_values=None, help=None, flag_values=FLAGS, **kwargs):
    """Defines a string flag whose value must be one of `enum_values`."""
    name, default, help = _legacy(name, default, help, kwargs)
    if not enum_values:
        raise ValueError(f"DEFINE_enum({name!r}) needs a non-empty enum_values")
    return _define("enum", str, name, default, help, flag_values, enum_values=enum_values)


def DEFINE_list(name=None, default=None, help=None, flag_values=FLAGS, **kwargs):
    """Defines a flag holding a comma-separated list of strings."""
    name, default, help = _legacy(name, default, help, kwargs)
    return _define("list", _parse_list, name, default, help, flag_values)


def mark_flag_as_required(name, flag_values=FLAGS):
    """Makes `app.run` fail unless flag `name` is given a value other than None."""
    flag_values.mark_as_required(name)


def mark_flags_as_required(names, flag_values=FLAGS):
    """Marks each of `names` as required."""
    for name in names:
        mark_flag_as_required(name, flag_values)


def _legacy(name, default, help, kwargs):
    name = kwargs.pop("flag_name", name)
    default = kwargs.pop("default_value", default)
    help = kwargs.pop("docstring", help)
    if kwargs:
        raise TypeError(f"unexpected keyword arguments {sorted(kwargs)}")
    if not name:
        raise TypeError("a flag needs a name")
    return name, default, help
