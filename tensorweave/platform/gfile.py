"""File access as TF1's `tf.gfile` (CamelCase) and `tf.io.gfile` (lowercase), on local paths.

Failures raise TensorFlow's error classes, as TF1 programs expect: a missing path is
`errors.NotFoundError`, an existing destination `errors.AlreadyExistsError`, anything else the
OS reports `errors.UnknownError` (or `PermissionDeniedError`).
"""

import contextlib
import glob as _glob
import os
import shutil

from tensorweave.framework import errors

__all__ = [
    "GFile", "FastGFile", "Open", "Exists", "IsDirectory", "ListDirectory", "MakeDirs", "MkDir",
    "Remove", "DeleteRecursively", "Rename", "Copy", "Glob", "Stat", "Walk",
    "exists", "isdir", "listdir", "makedirs", "mkdir", "remove", "rmtree", "rename", "copy",
    "glob", "stat", "walk",
]


@contextlib.contextmanager
def _os_errors(path):
    """Turns the OS's exceptions about `path` into TF's error classes."""
    try:
        yield
    except FileNotFoundError as e:
        raise errors.NotFoundError(None, None, f"{path}; No such file or directory") from e
    except FileExistsError as e:
        raise errors.AlreadyExistsError(None, None, f"{path}; File exists") from e
    except PermissionError as e:
        raise errors.PermissionDeniedError(None, None, f"{path}; Permission denied") from e
    except OSError as e:
        raise errors.UnknownError(None, None, f"{path}; {e.strerror or e}") from e


class GFile:
    """A file, as TF's `GFile(name, mode='r')`: text in 'r'/'w'/'a' modes, bytes with 'b'.

    Usable as a context manager and as an iterator over lines.
    """

    def __init__(self, name, mode="r"):
        if not mode or set(mode) - set("rwab+"):
            raise errors.InvalidArgumentError(None, None, f"Invalid mode {mode!r} for {name}")
        self._name = os.fspath(name)
        self._mode = mode
        # Text mode decodes UTF-8 and, as TF's GFile, leaves line endings as they are.
        text = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with _os_errors(self._name):
            self._file = open(self._name, mode, **text)

    @property
    def name(self):
        return self._name

    @property
    def mode(self):
        return self._mode

    def size(self):
        """The file's length in bytes."""
        self._file.flush()
        return os.fstat(self._file.fileno()).st_size

    def read(self, n=-1):
        """Reads `n` bytes (characters in text mode), or to the end when n is -1."""
        return self._file.read(n)

    def readline(self):
        return self._file.readline()

    def readlines(self):
        return self._file.readlines()

    def write(self, file_content):
        """Writes `file_content` (str in text mode, bytes in binary mode)."""
        if "b" not in self._mode and isinstance(file_content, (bytes, bytearray)):
            file_content = file_content.decode("utf-8")
        self._file.write(file_content)

    def seek(self, offset=None, whence=0, position=None):
        """Moves to `offset` (TF also spelled it `position`)."""
        if position is not None:
            offset = position
        return self._file.seek(offset or 0, whence)

    def tell(self):
        return self._file.tell()

    def flush(self):
        self._file.flush()

    def close(self):
        self._file.close()

    @property
    def closed(self):
        return self._file.closed

    def seekable(self):
        return True

    def __iter__(self):
        return iter(self._file)

    def __next__(self):
        return next(self._file)

    next = __next__

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


FastGFile = GFile
Open = GFile


def exists(path):
    """True when `path` names an existing file or directory."""
    return os.path.exists(os.fspath(path))


def isdir(path):
    """True when `path` is a directory."""
    return os.path.isdir(os.fspath(path))


def listdir(path):
    """The names (not paths) in directory `path`; NotFoundError if it does not exist."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise errors.NotFoundError(None, None, f"Could not find directory {path}")
    with _os_errors(path):
        return os.listdir(path)


def makedirs(path):
    """Creates directory `path` and any missing parents; an existing directory is fine."""
    path = os.fspath(path)
    with _os_errors(path):
        os.makedirs(path, exist_ok=True)


def mkdir(path):
    """Creates directory `path`; AlreadyExistsError if it exists."""
    path = os.fspath(path)
    with _os_errors(path):
        os.mkdir(path)


def remove(path):
    """Deletes file `path`; NotFoundError if it does not exist."""
    path = os.fspath(path)
    with _os_errors(path):
        os.remove(path)


def rmtree(path):
    """Deletes directory `path` and everything under it; NotFoundError if it does not exist."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise errors.NotFoundError(None, None, f"{path}; No such file or directory")
    with _os_errors(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def rename(src, dst, overwrite=False):
    """Renames `src` to `dst`; AlreadyExistsError if `dst` exists and not `overwrite`."""
    src, dst = os.fspath(src), os.fspath(dst)
    if not overwrite and os.path.exists(dst):
        raise errors.AlreadyExistsError(None, None, f"{dst}; File already exists")
    with _os_errors(src):
        os.replace(src, dst)


def copy(src, dst, overwrite=False):
    """Copies file `src` to `dst`; AlreadyExistsError if `dst` exists and not `overwrite`."""
    src, dst = os.fspath(src), os.fspath(dst)
    if not overwrite and os.path.exists(dst):
        raise errors.AlreadyExistsError(None, None, f"{dst}; File already exists")
    with _os_errors(src):
        shutil.copyfile(src, dst)


def glob(pattern):
    """The paths matching `pattern` (`*`, `?`, `[...]`), sorted."""
    if isinstance(pattern, (list, tuple)):
        return [match for p in pattern for match in glob(p)]
    return sorted(_glob.glob(os.fspath(pattern)))


class FileStatistics:
    """What `stat` returns: `length` in bytes, `mtime_nsec`, `is_directory`."""

    def __init__(self, length, mtime_nsec, is_directory):
        self.length = length
        self.mtime_nsec = mtime_nsec
        self.is_directory = is_directory

    def __repr__(self):
        return (f"FileStatistics(length={self.length}, mtime_nsec={self.mtime_nsec}, "
                f"is_directory={self.is_directory})")


def stat(path):
    """The size, modification time and kind of `path`; NotFoundError if it does not exist."""
    path = os.fspath(path)
    with _os_errors(path):
        st = os.stat(path)
    return FileStatistics(st.st_size, st.st_mtime_ns, os.path.isdir(path))


def walk(top, topdown=True, onerror=None):
    """Yields (dirname, subdirectory names, file names) for each directory under `top`."""
    top = os.fspath(top)
    if not os.path.isdir(top):
        return
    yield from os.walk(top, topdown=topdown, onerror=onerror)


# TF1's `tf.gfile` names.
Exists = exists
IsDirectory = isdir
ListDirectory = listdir
MakeDirs = makedirs
MkDir = mkdir
Remove = remove
DeleteRecursively = rmtree
Glob = glob
Stat = stat


def Rename(oldname, newname, overwrite=False):
    """Renames `oldname` to `newname`, as TF1's `tf.gfile.Rename`."""
    rename(oldname, newname, overwrite)


def Copy(oldpath, newpath, overwrite=False):
    """Copies `oldpath` to `newpath`, as TF1's `tf.gfile.Copy`."""
    copy(oldpath, newpath, overwrite)


def Walk(top, in_order=True):
    """Walks the tree under `top`, parents before children unless `in_order` is False."""
    return walk(top, topdown=in_order)
