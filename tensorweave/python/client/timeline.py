"""`tensorflow.python.client.timeline`: re-exports `tensorweave.tools.timeline`."""

from tensorweave.tools.timeline import Timeline, parse_timeline_label

__all__ = ["Timeline", "parse_timeline_label"]
