"""Encryption at rest, off against on, in one run: embedded transitions/s, webhook accepts/s, and
the raw AES-256-GCM seal/open cost beside them.

    python -m bench.encryption [--quick] [--rounds N] [--json]

Each figure alternates off, on, off, on (``--rounds`` pairs) on fresh stores and reports the
median of each side. The embedded workload is the 10-step no-op workflow of ``bench.embedded``
with a ~300-byte input carried into every step (so there is data to encrypt in every event);
the webhook figure is ``bench.http_accept``'s durable accept (``POST /hooks/park`` → 202) with
``orchestrator serve`` started with and without ``ORCHESTRATOR_ENCRYPTION_KEYS``. The raw cost is
``cryptography``'s AESGCM on the same payload size, and the whole codec (encode + decode of one
envelope) on top of it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.embedded import TimedNoop
from bench.http_accept import CONCURRENCY, drive, hook_definitions, start_child, stop_child
from connectors.base import Connectors
from orchestrator.backends.memory import MemoryEventLog
from orchestrator.crypto.codec import EncryptedCodec
from orchestrator.crypto.data_keys import DataKeys
from orchestrator.crypto.keyring import Keyring
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow
from schemas.envelope import Envelope

PAYLOAD = {"order": "A-1029", "customer": {"name": "Ada Lovelace", "email": "ada@example.com"}, "note": "x" * 200}
KEYS = "bench=" + base64.b64encode(os.urandom(32)).decode()


@dataclass
class EncryptionResult:
    rounds: int
    transitions_off_per_s: float
    transitions_on_per_s: float
    webhook_off_per_s: float
    webhook_on_per_s: float
    payload_bytes: int
    seal_us: float  # AESGCM encrypt of the payload
    open_us: float  # AESGCM decrypt of it
    codec_us: float  # encode + decode of one whole envelope through EncryptedCodec

    @property
    def transitions_ratio(self) -> float:
        return self.transitions_on_per_s / self.transitions_off_per_s if self.transitions_off_per_s else 0.0

    @property
    def webhook_ratio(self) -> float:
        return self.webhook_on_per_s / self.webhook_off_per_s if self.webhook_off_per_s else 0.0


def workflow() -> Any:
    flow = Workflow("bench-sealed")
    for index in range(10):
        flow.task(f"s{index}", "noop", input={"p": "input"})
    return flow.build()


async def transitions_per_s(folder: Path, keys: str | None, concurrent: int) -> float:
    settings = Settings(
        event_log_url=f"sqlite:///{folder}/bench-{time.monotonic_ns()}.db?synchronous=full",
        transport_url="inprocess://?concurrency=64",
        retention_interval=0,
        encryption_keys=keys,
    )
    async with Runtime(settings, connectors=Connectors([TimedNoop()])) as runtime:
        await runtime.register(workflow())
        warm = await runtime.start_execution("bench-sealed", PAYLOAD)
        await runtime.wait(warm.execution_id, timeout=60)
        began = time.perf_counter()
        starts = await asyncio.gather(*(runtime.start_execution("bench-sealed", PAYLOAD) for _ in range(concurrent)))
        await asyncio.gather(*(runtime.wait(s.execution_id, timeout=600) for s in starts))
        elapsed = time.perf_counter() - began
        events = len(await runtime.history(starts[0].execution_id))
    return concurrent * events / elapsed


async def webhook_per_s(folder: Path, keys: str | None, seconds: float, warmup: float) -> float:
    command = [
        sys.executable, "-m", "orchestrator", "serve", "--port", "0",
        "--event-log", f"sqlite:///{folder}/hooks-{time.monotonic_ns()}.db?synchronous=full",
        "--transport", "inprocess://", "--definitions", *map(str, hook_definitions(folder)),
    ]  # fmt: skip
    env = {"ORCHESTRATOR_ENCRYPTION_KEYS": keys} if keys else None
    server, url = await start_child(command, folder / "serve.log", env=env)
    try:
        return (await drive(f"{url}/hooks/park", CONCURRENCY, seconds, warmup)).per_s
    finally:
        stop_child(server)


def aead_us(count: int) -> tuple[float, float]:
    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)
    plaintext = json.dumps(PAYLOAD).encode()
    start = time.perf_counter()
    for _ in range(count):
        sealed = aead.encrypt(nonce, plaintext, b"event/x/1")
    seal_us = (time.perf_counter() - start) / count * 1e6
    start = time.perf_counter()
    for _ in range(count):
        aead.decrypt(nonce, sealed, b"event/x/1")
    return seal_us, (time.perf_counter() - start) / count * 1e6


async def codec_us(count: int) -> float:
    codec = EncryptedCodec(DataKeys(Keyring.from_text(KEYS), MemoryEventLog()))
    envelope = Envelope("id-1", "StepSucceeded", "x", 1, "2026-01-01T00:00:00Z", "wf", 1, {"output": PAYLOAD})
    await codec.decode(await codec.encode([envelope]))  # the data key, created and cached
    start = time.perf_counter()
    for _ in range(count):
        await codec.decode(await codec.encode([envelope]))
    return (time.perf_counter() - start) / count * 1e6


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


async def run_encryption(*, quick: bool = False, rounds: int | None = None) -> EncryptionResult:
    rounds = rounds or (1 if quick else 3)
    concurrent = 100 if quick else 1000
    seconds, warmup = (1.5, 0.5) if quick else (8.0, 2.0)
    sides: dict[str, list[float]] = {"t_off": [], "t_on": [], "w_off": [], "w_on": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for _ in range(rounds):
            for side, keys in (("off", None), ("on", KEYS)):
                sides[f"t_{side}"].append(await transitions_per_s(folder, keys, concurrent))
        for _ in range(rounds):
            for side, keys in (("off", None), ("on", KEYS)):
                sides[f"w_{side}"].append(await webhook_per_s(folder, keys, seconds, warmup))
    seal, open_ = aead_us(2000 if quick else 20000)
    return EncryptionResult(
        rounds=rounds,
        transitions_off_per_s=_median(sides["t_off"]),
        transitions_on_per_s=_median(sides["t_on"]),
        webhook_off_per_s=_median(sides["w_off"]),
        webhook_on_per_s=_median(sides["w_on"]),
        payload_bytes=len(json.dumps(PAYLOAD)),
        seal_us=seal,
        open_us=open_,
        codec_us=await codec_us(2000 if quick else 20000),
    )


def encryption_rows(r: EncryptionResult) -> list[str]:
    return [
        f"### Encryption at rest: off against on (same run, median of {r.rounds} interleaved rounds)",
        "",
        "| figure | encryption off | encryption on | ratio | target |",
        "|---|---|---|---|---|",
        f"| transitions/s, embedded (SQLite synchronous=full), {r.payload_bytes}-byte data per event | "
        f"{r.transitions_off_per_s:,.0f} | {r.transitions_on_per_s:,.0f} | {r.transitions_ratio:.2f}x | ≥ 0.85x |",
        f"| webhook durable accept, `POST /hooks/park` → 202 | {r.webhook_off_per_s:,.0f}/s | "
        f"{r.webhook_on_per_s:,.0f}/s | {r.webhook_ratio:.2f}x | ≥ 0.85x |",
        f"| raw AES-256-GCM on {r.payload_bytes} bytes (`cryptography`) | | seal {r.seal_us:.1f} µs, "
        f"open {r.open_us:.1f} µs | | |",
        f"| the codec: encode + decode of one envelope | | {r.codec_us:.1f} µs | | |",
    ]


def as_dict(r: EncryptionResult) -> dict[str, object]:
    return {**asdict(r), "transitions_ratio": r.transitions_ratio, "webhook_ratio": r.webhook_ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run_encryption(quick=args.quick, rounds=args.rounds))
    print(json.dumps(as_dict(result), indent=2) if args.json else "\n".join(encryption_rows(result)))


if __name__ == "__main__":
    main()
