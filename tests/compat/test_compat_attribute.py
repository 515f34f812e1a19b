"""`tf.compat.v1` resolves after a plain `import tensorweave as tf`, in a fresh interpreter."""

import subprocess
import sys


def test_compat_v1_is_reachable_from_the_root_module():
    code = "import tensorweave as tf; assert tf.compat.v1.placeholder is tf.placeholder; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
