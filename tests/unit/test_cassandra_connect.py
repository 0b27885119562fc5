"""Which failed Cassandra connects are tried again: only those whose every host timed out."""

from __future__ import annotations

from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable

from orchestrator.backends.cassandra.schema import only_timeouts


def test_a_connect_every_host_timed_out_is_tried_again() -> None:
    assert only_timeouts(NoHostAvailable("no host", {"10.0.0.1:9042": OperationTimedOut(), "10.0.0.2:9042": OperationTimedOut()}))


def test_a_refused_or_mixed_or_other_failure_fails_at_once() -> None:
    assert not only_timeouts(NoHostAvailable("no host", {"127.0.0.1:1": ConnectionRefusedError(111, "refused")}))
    assert not only_timeouts(NoHostAvailable("no host", {"a": OperationTimedOut(), "b": ConnectionRefusedError()}))
    assert not only_timeouts(NoHostAvailable("no host", {}))
    assert not only_timeouts(OSError("unreachable"))
