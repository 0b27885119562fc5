"""The read side and maintenance over a recorded log: pages, verify, redrive, diff, timeline, integrity, archive, retention."""
