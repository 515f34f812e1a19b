"""TensorBoard's own web page shows a TensorWeave run (headless Chromium; skipped without it)."""

import pytest

import tensorweave as tf
from tools import tensorboard_screenshot as screenshot_tool

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(screenshot_tool.find_browser() is None, reason="no Chromium on this machine")]


def test_scalars_dashboard_lists_the_scalar_tag(tmp_path):
    with tf.Graph().as_default():
        loss = tf.placeholder(tf.float32, [], name="loss")
        summary = tf.summary.scalar("tensorweave_loss", loss)
        with tf.Session() as sess, tf.summary.FileWriter(str(tmp_path / "run"), sess.graph) as writer:
            for step in range(5):
                writer.add_summary(sess.run(summary, {loss: 1.0 / (step + 1)}), step)
    try:
        browser = screenshot_tool.Chromium(screenshot_tool.find_browser())
    except RuntimeError as e:  # a browser that cannot start here counts as no browser
        pytest.skip(f"Chromium could not start: {e}")
    with screenshot_tool.TensorBoard(str(tmp_path)) as board, browser as chromium:
        board.wait_until_serving("tensorweave_loss")
        chromium.open(board.url + "#scalars", settle_s=5)
        assert "tensorweave_loss" in chromium.text()
        chromium.screenshot(str(tmp_path / "scalars.png"))
    assert (tmp_path / "scalars.png").read_bytes().startswith(b"\x89PNG")
