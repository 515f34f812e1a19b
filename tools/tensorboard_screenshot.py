"""Screenshots of TensorBoard showing a real TensorWeave run.

    .venv/bin/python tools/tensorboard_screenshot.py [--out_dir docs/images] [--steps 300]

Trains TF1's `mnist_with_summaries.py` (tensorweave/examples/tutorials/mnist/) for --steps steps
into a temporary log directory, starts TensorBoard on it on a free local port, waits until it
serves, and has headless Chromium load its Scalars and Graphs dashboards and save each as a PNG
(`tensorboard_scalars.png`, `tensorboard_graphs.png` in --out_dir). Without Chromium it says so and
exits with status 1; Debian's `chromium-headless-shell` (or `chromium`) package provides it.
"""

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "chrome")
# TensorBoard imports all of TensorFlow when it is installed (the `bench` extra) unless this
# module of its own exists; it reads our event files without it.
TENSORBOARD = ("import sys, types; sys.modules['tensorboard.compat.notf'] = types.ModuleType('notf'); "
               "from tensorboard.main import run_main; run_main()")
DASHBOARDS = {"scalars": "#scalars", "graphs": "#graphs"}


def find_browser():
    """The path of a Chromium-family browser, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(log_dir, data_dir, steps):
    """Runs mnist_with_summaries.py for `steps` steps, writing its events under `log_dir`."""
    script = os.path.join(ROOT, "tensorweave", "examples", "tutorials", "mnist", "mnist_with_summaries.py")
    subprocess.run([sys.executable, script, "--data_dir", data_dir, "--log_dir", log_dir,
                    "--max_steps", str(steps)], check=True, stdout=subprocess.DEVNULL)


class TensorBoard:
    """`tensorboard --logdir log_dir` on a free port of 127.0.0.1, as a context manager."""

    def __init__(self, log_dir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._process = subprocess.Popen(
            [sys.executable, "-c", TENSORBOARD, "--logdir", log_dir, "--host", "127.0.0.1",
             "--port", str(self.port), "--reload_interval", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_until_serving(self, tag, timeout=60):
        """Waits until TensorBoard lists `tag` among the run's scalars."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("TensorBoard exited: " + self._process.stderr.read())
            try:
                with urllib.request.urlopen(self.url + "data/plugin/scalars/tags", timeout=2) as reply:
                    if tag.encode() in reply.read():
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"TensorBoard did not list {tag} within {timeout} s")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
    JSON messages ending in NUL, commands on its fd 3, replies on its fd 4), so a page is given
    real time to render (TensorBoard parses graphs in the background, which Chromium's
    `--virtual-time-budget` does not wait for). A context manager."""

    def __init__(self, browser, size=(1400, 900)):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def as_fds_3_and_4():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        # --no-sandbox: Chromium's sandbox refuses to start as root (containers, CI).
        self._process = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--hide-scrollbars", "--enable-unsafe-swiftshader",
             "--remote-debugging-pipe", f"--window-size={size[0]},{size[1]}", "about:blank"],
            preexec_fn=as_fds_3_and_4, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer, self._next_id = b"", 0
        try:
            target = self._call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self._call("Emulation.setDeviceMetricsOverride", session=True, width=size[0], height=size[1],
                       deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.__exit__(None, None, None)  # no browser left behind when it fails to start
            raise

    def _call(self, method, session=False, **params):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        try:
            os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise RuntimeError(f"Chromium exited (status {self._process.poll()}) before {method}") from None
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the DevTools pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url, settle_s=8.0):
        """Loads `url` and gives its scripts `settle_s` seconds."""
        self._call("Page.navigate", session=True, url=url)
        time.sleep(settle_s)

    def text(self):
        """The page's text, shadow DOMs included (TensorBoard's Polymer widgets live in them)."""
        expression = ("(function walk(n) { let t = n.shadowRoot ? walk(n.shadowRoot) : ''; "
                      "for (const c of n.childNodes) t += c.nodeType === 3 ? c.textContent + ' ' : walk(c); "
                      "return t; })(document.documentElement)")
        return self._call("Runtime.evaluate", session=True, expression=expression)["result"]["value"]

    def screenshot(self, path):
        data = self._call("Page.captureScreenshot", session=True, format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        try:
            self._call("Browser.close")
        except (OSError, RuntimeError):
            pass
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default=os.path.join(ROOT, "docs", "images"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--data_dir", default=os.path.join(ROOT, "MNIST_data"))
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("tensorboard_screenshot: no Chromium found (looked for " + ", ".join(BROWSERS) + "); install "
              "one, e.g. `apt-get install chromium-headless-shell`", file=sys.stderr)
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as log_dir:
        train(log_dir, args.data_dir, args.steps)
        with TensorBoard(log_dir) as board, Chromium(browser) as chromium:
            board.wait_until_serving("cross_entropy_1")
            for name, fragment in DASHBOARDS.items():
                path = os.path.join(args.out_dir, f"tensorboard_{name}.png")
                chromium.open(board.url + fragment)
                chromium.screenshot(path)
                print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
