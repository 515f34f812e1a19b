"""tf.app.run, tf.app.flags, tf.gfile / tf.io.gfile and tf.logging."""

import logging
import os
import sys
import types

import pytest

from tensorweave.framework import errors
from tensorweave.platform import app, flags, gfile, tf_logging

# -- flags ---------------------------------------------------------------------------------------


@pytest.fixture
def fv():
    values = flags.FlagValues()
    flags.DEFINE_string("data_dir", "/tmp/data", "Where the data is.", flag_values=values)
    flags.DEFINE_integer("batch_size", 100, "Examples per step.", flag_values=values)
    flags.DEFINE_float("learning_rate", 0.01, "Step size.", flag_values=values)
    flags.DEFINE_boolean("fake_data", False, "Use fake data.", flag_values=values)
    flags.DEFINE_bool("sync", True, "Synchronous updates.", flag_values=values)
    flags.DEFINE_enum("job_name", None, ["ps", "worker"], "Job of this task.", flag_values=values)
    flags.DEFINE_list("hosts", "a:1,b:2", "Host list.", flag_values=values)
    flags.DEFINE_string("unset", None, "No default.", flag_values=values)
    return values


def test_defaults_before_and_after_parsing(fv):
    assert fv(["prog"]) == ["prog"]
    assert (fv.data_dir, fv.batch_size, fv.learning_rate) == ("/tmp/data", 100, 0.01)
    assert (fv.fake_data, fv.sync, fv.job_name, fv.unset) == (False, True, None, None)
    assert fv.hosts == ["a:1", "b:2"]


def test_flag_syntaxes(fv):
    rest = fv(["prog", "--data_dir=/d", "--batch_size", "32", "-learning_rate=0.5", "--fake_data",
               "--nosync", "--job_name=worker", "--hosts=x:1, y:2", "positional"])
    assert rest == ["prog", "positional"]
    assert (fv.data_dir, fv.batch_size, fv.learning_rate) == ("/d", 32, 0.5)
    assert (fv.fake_data, fv.sync, fv.job_name, fv.hosts) == (True, False, "worker", ["x:1", "y:2"])
    fv(["prog", "--fake_data=false", "--sync=1", "--batch_size=0x10", "--learning_rate", "-1e-3"])
    assert (fv.fake_data, fv.sync, fv.batch_size, fv.learning_rate) == (False, True, 16, -1e-3)


def test_unknown_flags_and_double_dash_are_left_for_main(fv):
    rest = fv(["prog", "-f", "kernel.json", "--unknown=3", "--batch_size=7", "--", "--data_dir=x"])
    assert rest == ["prog", "-f", "kernel.json", "--unknown=3", "--data_dir=x"]
    assert fv.batch_size == 7 and fv.data_dir == "/tmp/data"
    with pytest.raises(flags.UnrecognizedFlagError, match="unknown"):
        fv(["prog", "--unknown=3"], known_only=False)


@pytest.mark.parametrize("argv, message", [
    (["--batch_size=ten"], "batch_size"),
    (["--fake_data=maybe"], "fake_data"),
    (["--job_name=chief"], "ps|worker"),
    (["--batch_size"], "needs a value"),
])
def test_bad_values_raise_naming_the_flag(fv, argv, message):
    with pytest.raises(flags.IllegalFlagValueError, match=message):
        fv(["prog"] + argv)


def test_integer_bounds():
    values = flags.FlagValues()
    flags.DEFINE_integer("workers", 1, "Workers.", lower_bound=1, upper_bound=8, flag_values=values)
    values(["prog", "--workers=8"])
    with pytest.raises(flags.IllegalFlagValueError, match=">= 1"):
        values(["prog", "--workers=0"])


def test_lazy_parse_of_sys_argv_on_first_read(fv, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prog", "--batch_size=64", "--some_launcher_flag"])
    assert not fv.is_parsed()
    assert fv.batch_size == 64
    assert fv.is_parsed()


def test_assignment_unknown_names_and_dict(fv):
    fv.mark_as_parsed()
    fv.batch_size = 5
    assert fv.batch_size == 5 and fv.flag_values_dict()["batch_size"] == 5
    assert "batch_size" in fv and "nope" not in fv
    with pytest.raises(AttributeError):
        fv.nope
    with pytest.raises(AttributeError):
        fv.nope = 1
    fv.unparse_flags()
    assert not fv.is_parsed() and fv["batch_size"].value == 100


def test_duplicate_definitions_from_elsewhere_are_refused(fv):
    with pytest.raises(flags.DuplicateFlagError, match="batch_size"):
        flags.DEFINE_integer("batch_size", 1, "again", flag_values=fv)


def test_tf14_keyword_names():
    values = flags.FlagValues()
    flags.DEFINE_string(flag_name="mode", default_value="train", docstring="Mode.", flag_values=values)
    values.mark_as_parsed()
    assert values.mode == "train"


def test_tf_app_flags_namespace():
    assert app.flags is flags
    for name in ("DEFINE_string", "DEFINE_integer", "DEFINE_float", "DEFINE_boolean", "DEFINE_bool",
                 "DEFINE_enum", "DEFINE_list", "FLAGS"):
        assert hasattr(flags, name), name


# -- app.run -------------------------------------------------------------------------------------


@pytest.fixture
def global_flags(monkeypatch):
    """A fresh FLAGS for app.run, so no test leaves parsed flags behind."""
    values = flags.FlagValues()
    flags.DEFINE_integer("steps", 10, "Steps.", flag_values=values)
    monkeypatch.setattr(flags, "FLAGS", values)
    return values


def test_run_parses_flags_and_exits_with_mains_status(global_flags):
    seen = {}

    def main(argv):
        seen["argv"], seen["steps"] = argv, global_flags.steps
        return 3

    with pytest.raises(SystemExit) as exit_info:
        app.run(main, argv=["prog", "--steps=5", "--other=1", "file.txt"])
    assert exit_info.value.code == 3
    assert seen == {"argv": ["prog", "--other=1", "file.txt"], "steps": 5}


def test_run_defaults_to_main_of_main_module_and_sys_argv(global_flags, monkeypatch):
    module = types.ModuleType("__main__")
    module.main = lambda argv: len(argv)
    monkeypatch.setitem(sys.modules, "__main__", module)
    monkeypatch.setattr(sys, "argv", ["prog", "--steps=2", "x"])
    with pytest.raises(SystemExit) as exit_info:
        app.run()
    assert exit_info.value.code == 2 and global_flags.steps == 2


def test_run_reports_bad_flags_and_help(global_flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        app.run(lambda argv: 0, argv=["prog", "--steps=many"])
    assert exit_info.value.code == 1
    assert "FATAL Flags parsing error" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        app.run(lambda argv: 0, argv=["prog", "--help"])
    assert exit_info.value.code == 0
    assert "--steps" in capsys.readouterr().out


def test_run_requires_marked_flags(global_flags, capsys):
    flags.DEFINE_string("job", None, "Job.", flag_values=global_flags)
    flags.mark_flag_as_required("job", flag_values=global_flags)
    with pytest.raises(SystemExit) as exit_info:
        app.run(lambda argv: 0, argv=["prog"])
    assert exit_info.value.code == 1 and "--job" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        app.run(lambda argv: 0, argv=["prog", "--job=ps"])
    assert exit_info.value.code == 0


# -- gfile ---------------------------------------------------------------------------------------


def test_gfile_text_and_binary_files(tmp_path):
    path = str(tmp_path / "a.txt")
    with gfile.GFile(path, "w") as f:
        f.write("line 1\nline 2\n")
    with gfile.Open(path) as f:
        assert f.read() == "line 1\nline 2\n"
        assert f.size() == 14
    with gfile.FastGFile(path, "rb") as f:
        assert f.read(4) == b"line" and f.tell() == 4
        f.seek(position=0)
        assert list(f) == [b"line 1\n", b"line 2\n"]
    with gfile.GFile(path, "a") as f:
        f.write("line 3\n")
    with gfile.GFile(path) as f:
        assert f.readlines()[-1] == "line 3\n"
    with pytest.raises(errors.NotFoundError):
        gfile.GFile(str(tmp_path / "missing"), "r")


def test_gfile_directories_and_files(tmp_path):
    root = str(tmp_path / "x" / "y")
    assert not gfile.Exists(root)
    gfile.MakeDirs(root)
    gfile.makedirs(root)  # existing directory: no error
    assert gfile.IsDirectory(root) and gfile.isdir(root) and gfile.exists(root)
    with pytest.raises(errors.AlreadyExistsError):
        gfile.MkDir(root)
    for name in ("b.ckpt", "a.ckpt", "c.txt"):
        with gfile.GFile(os.path.join(root, name), "wb") as f:
            f.write(b"data")
    assert sorted(gfile.ListDirectory(root)) == ["a.ckpt", "b.ckpt", "c.txt"]
    assert gfile.Glob(os.path.join(root, "*.ckpt")) == [os.path.join(root, n) for n in ("a.ckpt", "b.ckpt")]
    assert gfile.Stat(os.path.join(root, "c.txt")).length == 4
    a, b = os.path.join(root, "a.ckpt"), os.path.join(root, "b.ckpt")
    with pytest.raises(errors.AlreadyExistsError):
        gfile.Copy(a, b)
    gfile.Copy(a, os.path.join(root, "d.ckpt"))
    gfile.Rename(a, b, overwrite=True)
    with pytest.raises(errors.AlreadyExistsError):
        gfile.rename(b, os.path.join(root, "d.ckpt"))
    gfile.Remove(b)
    with pytest.raises(errors.NotFoundError):
        gfile.remove(b)
    walked = list(gfile.Walk(str(tmp_path)))
    assert walked[0][0] == str(tmp_path) and walked[-1][0] == root
    gfile.DeleteRecursively(str(tmp_path / "x"))
    assert not gfile.Exists(str(tmp_path / "x"))
    with pytest.raises(errors.NotFoundError):
        gfile.rmtree(str(tmp_path / "x"))
    with pytest.raises(errors.NotFoundError):
        gfile.listdir(str(tmp_path / "x"))


def test_gfile_has_both_spellings():
    pairs = [("Exists", "exists"), ("IsDirectory", "isdir"), ("ListDirectory", "listdir"),
             ("MakeDirs", "makedirs"), ("Remove", "remove"), ("DeleteRecursively", "rmtree"),
             ("Glob", "glob"), ("Rename", "rename"), ("Copy", "copy"), ("Stat", "stat")]
    for camel, lower in pairs:
        assert callable(getattr(gfile, camel)) and callable(getattr(gfile, lower))
    assert gfile.Open is gfile.GFile and gfile.FastGFile is gfile.GFile


# -- logging ------------------------------------------------------------------------------------


@pytest.fixture
def verbosity():
    old = tf_logging.get_logger().level
    yield
    tf_logging.get_logger().setLevel(old)


def test_levels_are_the_standard_ones():
    assert (tf_logging.DEBUG, tf_logging.INFO, tf_logging.WARN, tf_logging.WARNING,
            tf_logging.ERROR, tf_logging.FATAL) == (10, 20, 30, 30, 40, 50)
    assert tf_logging.get_logger().name == "tensorweave"


def test_set_verbosity_filters_messages(verbosity, caplog):
    caplog.set_level(logging.NOTSET)
    tf_logging.set_verbosity(tf_logging.WARN)
    assert tf_logging.get_verbosity() == tf_logging.WARN
    tf_logging.info("hidden %d", 1)
    tf_logging.warning("shown %d", 2)
    tf_logging.warn("shown %d", 3)
    tf_logging.set_verbosity(tf_logging.DEBUG)
    tf_logging.debug("debug %s", "x")
    tf_logging.error("error")
    tf_logging.fatal("fatal")
    tf_logging.log(tf_logging.INFO, "logged")
    tf_logging.vlog(tf_logging.INFO, "vlogged")
    messages = [r.getMessage() for r in caplog.records if r.name == "tensorweave"]
    assert messages == ["shown 2", "shown 3", "debug x", "error", "fatal", "logged", "vlogged"]
    # Records point at the caller, not at tf_logging.
    assert all(r.filename == os.path.basename(__file__) for r in caplog.records)


def test_log_every_n_and_first_n(verbosity, caplog):
    tf_logging.set_verbosity(tf_logging.INFO)
    for i in range(7):
        tf_logging.log_every_n(tf_logging.INFO, "every %d", 3, i)
    for i in range(5):
        tf_logging.log_first_n(tf_logging.INFO, "first %d", 2, i)
    tf_logging.log_if(tf_logging.INFO, "if %d", False, 0)
    tf_logging.log_if(tf_logging.INFO, "if %d", True, 1)
    messages = [r.getMessage() for r in caplog.records if r.name == "tensorweave"]
    assert messages == ["every 0", "every 3", "every 6", "first 0", "first 1", "if 1"]
    assert all(r.filename == os.path.basename(__file__) for r in caplog.records)
