"""Building a window trigger source: names, directories and configuration errors (no I/O)."""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Any

import pytest

from orchestrator.settings import Settings, SettingsError
from schemas.definition import KafkaTrigger, WindowTrigger
from triggers.sources import SourceSpec
from triggers.window_source import WindowTriggerSource

KAFKA = {"kafka": "kafka://broker-1:9092,broker-2?partitions=6&replication=3"}


def spec(trigger: Any, settings: Settings | None = None, **extra: Any) -> SourceSpec:
    settings = settings or Settings(connections=KAFKA)
    return SourceSpec("lock_account", 2, trigger, runtime=None, settings=settings, extra=extra)  # type: ignore[arg-type]


def window(**changes: Any) -> WindowTrigger:
    fields = {"name": "failed_logins", "topics": ["auth.events", "legacy.auth"], "key": "data.user",
              "window_seconds": 60, "threshold": 5, **changes}  # fmt: skip
    return WindowTrigger.model_validate(fields)


def test_the_manager_entry_point_builds_a_source_with_the_shared_names(tmp_path: Path) -> None:
    module, _, name = "triggers.window_source:WindowTriggerSource".partition(":")
    factory = getattr(importlib.import_module(module), name)
    source = factory(spec(window(), Settings(connections=KAFKA, state_dir=str(tmp_path))))
    assert isinstance(source, WindowTriggerSource)
    assert source.app_id == "orchestrator.lock_account.failed_logins"  # = the manager's consumer_group()
    assert source.hits_topic == "orchestrator.lock_account.failed_logins-hits"
    assert source.dead_letter_topic == "auth.events.dlq"
    assert source.data_dir == tmp_path / source.app_id
    assert source.options.bootstrap == ("broker-1:9092", "broker-2:9092")
    assert (source.options.partitions, source.options.replication) == (6, 3)
    assert source.step == 6 and source.actor == "trigger:lock_account/failed_logins"
    assert source.app is None and not list(tmp_path.iterdir())  # nothing happens before start()


def test_the_data_directory_defaults_to_a_temp_dir_and_extra_overrides_settings(tmp_path: Path) -> None:
    default = WindowTriggerSource(spec(window()))
    assert default.data_dir == Path(tempfile.gettempdir()) / "orchestrator-state" / default.app_id
    chosen = WindowTriggerSource(spec(window(), Settings(connections=KAFKA, state_dir="/elsewhere"), state_dir=tmp_path))
    assert chosen.data_dir == tmp_path / chosen.app_id
    assert Settings.from_env({"ORCHESTRATOR_STATE_DIR": "/var/lib/orchestrator"}).state_dir == "/var/lib/orchestrator"


def test_configuration_errors_are_raised_when_the_source_is_built() -> None:
    with pytest.raises(TypeError, match="needs a WindowTrigger"):
        WindowTriggerSource(spec(KafkaTrigger(name="orders", topics=["orders"])))
    with pytest.raises(ValueError, match="at least 1"):
        WindowTriggerSource(spec(window(window_seconds=0.5)))
    with pytest.raises(SettingsError, match="ORCHESTRATOR_CONNECTION_KAFKA"):
        WindowTriggerSource(spec(window(), Settings()))
    with pytest.raises(ValueError, match="not a kafka://"):
        WindowTriggerSource(spec(window(), Settings(connections={"kafka": "amqp://x"})))
