"""The http connector's egress policy: which addresses are refused, the allow-list, the resolver.

Each refused class has a case, and each has its allow-list counterpart proving the check can
let an address through (so a policy refusing everything would fail here too).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from connectors.egress import EgressDenied, EgressPolicy, GuardedResolver, address_problem
from connectors.http import HttpConnector
from orchestrator.ports import StepCall

REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "fc00::1": "private",
    "169.254.1.1": "link-local",
    "fe80::1": "link-local",
    "169.254.169.254": "metadata",
    "fd00:ec2::254": "metadata",
    "100.100.100.200": "metadata",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "100.64.0.1": "non-public",
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped
    "64:ff9b::a9fe:a9fe": "metadata",  # NAT64 of 169.254.169.254
    "2002:7f00:1::": "loopback",  # 6to4 of 127.0.0.1
}
PUBLIC = ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"]


@pytest.mark.parametrize(("address", "kind"), sorted(REFUSED.items()))
def test_each_non_public_class_is_refused_by_default(address: str, kind: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) == kind
    problem = EgressPolicy().address_denied(address)
    assert problem is not None and kind in problem and "ORCHESTRATOR_HTTP_ALLOW" in problem


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert EgressPolicy().address_denied(address) is None


def test_the_allow_list_lets_cidrs_addresses_and_names_through() -> None:
    policy = EgressPolicy(["10.0.0.0/8", "::1", "internal.example", "*.corp.example"])
    assert policy.address_denied("10.200.0.1") is None
    assert policy.address_denied("::1") is None
    assert policy.address_denied("127.0.0.1") is not None  # only what is listed
    assert policy.address_denied("11.0.0.1") is None  # public anyway
    assert policy.host_allowed("internal.example") and policy.host_allowed("INTERNAL.example.")
    assert policy.host_allowed("a.b.corp.example") and policy.host_allowed("corp.example")
    assert not policy.host_allowed("evilcorp.example") and not policy.host_allowed("other.example")


def test_url_hosts_are_judged_as_ip_literals_only() -> None:
    policy = EgressPolicy()
    assert policy.host_denied("169.254.169.254") is not None
    assert policy.host_denied("[::1]") is not None
    assert policy.host_denied("example.com") is None  # judged when it resolves
    assert EgressPolicy(["169.254.169.254"]).host_denied("169.254.169.254") is None


class Answers(AbstractResolver):
    """A resolver giving fixed answers: what a DNS server (or an attacker's) could say."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_a_name_resolving_to_loopback_is_refused() -> None:
    resolver = GuardedResolver(EgressPolicy(), Answers("127.0.0.1"))
    with pytest.raises(EgressDenied, match="loopback"):
        await resolver.resolve("innocent.example", 80)


async def test_only_checked_addresses_are_handed_to_the_pool() -> None:
    """Rebinding: the pool connects to what the resolver returned, and that was checked."""
    resolver = GuardedResolver(EgressPolicy(), Answers("93.184.216.34", "169.254.169.254", "10.0.0.1"))
    assert [r["host"] for r in await resolver.resolve("mixed.example", 80)] == ["93.184.216.34"]


async def test_an_allowed_name_may_resolve_anywhere() -> None:
    resolver = GuardedResolver(EgressPolicy(["svc.internal"]), Answers("10.0.0.7"))
    assert [r["host"] for r in await resolver.resolve("svc.internal", 80)] == ["10.0.0.7"]
    allowed = GuardedResolver(EgressPolicy(["10.0.0.0/8"]), Answers("10.0.0.7"))
    assert [r["host"] for r in await allowed.resolve("other.internal", 80)] == ["10.0.0.7"]


def test_registration_names_a_refused_literal_address() -> None:
    connector = HttpConnector()
    [problem] = connector.step_problems({"url": "http://169.254.169.254/latest/meta-data/"})
    assert "metadata" in problem
    assert connector.step_problems({"url": "https://example.com/"}) == []
    assert HttpConnector(egress=EgressPolicy(["169.254.169.254"])).step_problems(
        {"url": "http://169.254.169.254/"}
    ) == []


async def test_an_ip_literal_url_is_refused_before_connecting() -> None:
    call: Any = StepCall("e", "wf", "s", 1, "k", config={"url": "http://127.0.0.1:9/"})
    async with HttpConnector() as connector:
        with pytest.raises(Exception) as info:
            await connector.invoke(call)
    assert getattr(info.value, "type", None) == "http.egress_denied"
    assert getattr(info.value, "retryable", None) is False
