"""bench/encryption.py: the table it prints and the raw costs it measures (tiny counts)."""

from __future__ import annotations

from bench.encryption import EncryptionResult, aead_us, as_dict, codec_us, encryption_rows


def test_the_rows_show_both_sides_and_their_ratio() -> None:
    result = EncryptionResult(3, 1000.0, 900.0, 400.0, 380.0, 297, 0.6, 0.5, 12.0)
    rows = encryption_rows(result)
    assert "| 1,000 | 900 | 0.90x | ≥ 0.85x |" in rows[4]
    assert "400/s | 380/s | 0.95x" in rows[5]
    assert "seal 0.6 µs, open 0.5 µs" in rows[6] and "12.0 µs" in rows[7]
    assert as_dict(result)["transitions_ratio"] == 0.9
    assert EncryptionResult(1, 0.0, 1.0, 0.0, 1.0, 1, 0, 0, 0).transitions_ratio == 0.0


async def test_the_raw_costs_are_measured() -> None:
    seal, open_ = aead_us(10)
    assert seal > 0 and open_ > 0
    assert await codec_us(10) > 0
