"""The access control of one process from its settings: key service, role catalog, and the
chain of authenticators the middleware asks in order (API keys first; others may follow)."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.access_ports import AccessStore
from orchestrator.auth.apikeys import ApiKeyAuthenticator, KeyService
from orchestrator.auth.keys import Hasher
from orchestrator.auth.policy import RoleCatalog
from orchestrator.auth.principal import Authenticator
from orchestrator.auth.roles import load_roles_file
from orchestrator.settings import Settings, SettingsError

log = logging.getLogger(__name__)


@dataclass
class AccessControl:
    keys: KeyService
    catalog: RoleCatalog
    authenticators: list[Authenticator] = field(default_factory=list)


def hasher_of(settings: Settings) -> Hasher:
    return Hasher((settings.key_pepper or "").encode("utf-8"))


def access_control(store: AccessStore, settings: Settings, clock: Callable[[], float] = time.time) -> AccessControl:
    """Keys, roles and the API key authenticator over ``store``; RoleInvalid for a bad roles file."""
    hasher = hasher_of(settings)
    keys = KeyService(store, hasher, clock)
    api_keys = ApiKeyAuthenticator(store, hasher, clock=clock)
    keys.changed.append(api_keys.forget)
    return AccessControl(keys, RoleCatalog(store, load_roles_file(settings.roles_file)), [api_keys])


class Unprotected(SettingsError):
    """Authentication is off on an address other machines can reach."""


def loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> None:
    """Unprotected when ``ORCHESTRATOR_AUTH=off`` and the server would listen beyond loopback;
    a warning when keys are hashed without a pepper there."""
    if loopback(settings.host):
        return
    if not settings.auth:
        raise Unprotected(
            f"ORCHESTRATOR_AUTH=off is allowed only on a loopback address, not {settings.host!r}:"
            " turn authentication on (create a key with 'orchestrator keys create --role admin')"
            " or listen on 127.0.0.1"
        )
    if not settings.key_pepper:
        log.warning("ORCHESTRATOR_KEY_PEPPER is not set: API keys are hashed without a pepper (docs/security.md)")
