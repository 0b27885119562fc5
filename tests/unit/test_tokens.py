"""OIDC/JWT bearer tokens: what verifies, what is refused and why, and the key set's reloads."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from orchestrator.auth.claims import ClaimsRule
from orchestrator.auth.jwks import Jwks
from orchestrator.auth.principal import AuthenticationFailed
from orchestrator.auth.tokens import TokenAuthenticator, TokenPolicy, bearer
from orchestrator.settings import Settings, SettingsError

ISSUER = "https://id.example.test/"
AUDIENCE = "orchestrator"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwk(private: Any, kid: str, **extra: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else ECAlgorithm
    data: dict[str, Any] = algorithm.to_jwk(private.public_key(), as_dict=True)
    return {**data, "kid": kid, **extra}


def write_jwks(path: Path, *keys: dict[str, Any]) -> str:
    path.write_text(json.dumps({"keys": list(keys)}))
    return str(path)


def token(
    private: Any = RSA_KEY, kid: str | None = "k1", algorithm: str = "RS256", **claims: Any
) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "ada", "exp": now + 300, "iat": now, **claims}
    body = {k: v for k, v in body.items() if v is not None}
    headers = {"kid": kid} if kid else {}
    return jwt.encode(body, private, algorithm=algorithm, headers=headers)


def authorization(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jwks_file(tmp_path: Path) -> str:
    return write_jwks(tmp_path / "jwks.json", jwk(RSA_KEY, "k1"), jwk(EC_KEY, "e1"))


def authenticator(location: str, rule: ClaimsRule | None = None, **policy: Any) -> TokenAuthenticator:
    return TokenAuthenticator(Jwks(location, min_reload=0), TokenPolicy(ISSUER, AUDIENCE, **policy), rule)


async def refused(auth: TokenAuthenticator, value: str) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        await auth.authenticate(authorization(value), {})
    return caught.value.code


async def test_a_valid_token_becomes_a_token_principal(jwks_file: str) -> None:
    auth = authenticator(jwks_file)
    principal = await auth.authenticate(authorization(token(tenant="acme", roles=["operator"], jti="t-1")), {})
    assert principal is not None
    assert (principal.subject, principal.kind, principal.tenant) == ("ada", "token", "acme")
    assert principal.roles_in("acme") == ("operator",) and principal.roles_in("other") == ()
    assert principal.credential_id == "t-1" and principal.actor == "token:ada"
    ec_token = token(EC_KEY, "e1", "ES256")
    assert (await auth.authenticate(authorization(ec_token), {})) is not None


async def test_requests_without_a_jwt_are_left_to_other_authenticators(jwks_file: str) -> None:
    auth = authenticator(jwks_file)
    assert await auth.authenticate({}, {}) is None
    assert await auth.authenticate({"Authorization": "Basic YWRhOnB3"}, {}) is None
    assert await auth.authenticate(authorization("orch_abc123_secretpart_checksum"), {}) is None
    assert await auth.authenticate(authorization("a.b.c"), {}) is None  # no JOSE header
    assert bearer({"authorization": "bearer  xyz "}) == "xyz"


async def test_expiry_and_not_before_hold_within_the_leeway(jwks_file: str) -> None:
    auth = authenticator(jwks_file, leeway=30)
    now = int(time.time())
    assert await refused(auth, token(exp=now - 60)) == "token_expired"
    assert await auth.authenticate(authorization(token(exp=now - 10)), {}) is not None
    assert await refused(auth, token(nbf=now + 120)) == "token_not_yet_valid"
    assert await auth.authenticate(authorization(token(nbf=now + 10)), {}) is not None
    assert await refused(auth, token(exp=None)) == "token_missing_claim"


async def test_another_issuer_or_audience_is_refused(jwks_file: str) -> None:
    auth = authenticator(jwks_file)
    assert await refused(auth, token(iss="https://evil.example.test/")) == "token_invalid_issuer"
    assert await refused(auth, token(aud="another-service")) == "token_invalid_audience"
    assert await refused(auth, token(aud=None)) == "token_missing_claim"


async def test_a_signature_by_another_key_is_refused(jwks_file: str) -> None:
    auth = authenticator(jwks_file)
    assert await refused(auth, token(OTHER_RSA_KEY, "k1")) == "token_bad_signature"
    tampered = token().rsplit(".", 1)[0] + "." + token(OTHER_RSA_KEY).rsplit(".", 1)[1]
    assert await refused(auth, tampered) == "token_bad_signature"


async def test_alg_none_and_hmac_with_the_public_key_are_refused(jwks_file: str) -> None:
    auth = authenticator(jwks_file)
    unsigned = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "ada", "exp": time.time() + 60}, None, algorithm="none")
    assert await refused(auth, unsigned) == "token_algorithm_refused"
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # PyJWT itself refuses to HMAC with a PEM key, so the forgery is built by hand.
    forged = hmac_token(public_pem, {"iss": ISSUER, "aud": AUDIENCE, "sub": "ada", "exp": int(time.time()) + 60})
    assert await refused(auth, forged) == "token_algorithm_refused"
    # An allowed algorithm with a key of another type (ES256 header, RSA key) is refused too.
    mismatched = hmac_token(b"x", {"sub": "ada"}, alg="ES256", kid="k1")
    assert await refused(auth, mismatched) == "token_algorithm_refused"


def hmac_token(secret: bytes, claims: dict[str, Any], alg: str = "HS256", kid: str = "k1") -> str:
    import base64
    import hashlib
    import hmac

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signing_input = f"{part({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{part(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def test_settings_cannot_allow_none_or_hmac() -> None:
    for algorithms in (("none",), ("HS256",), ("RS256", "HS512"), ()):
        with pytest.raises(SettingsError, match="not allowed"):
            TokenPolicy(ISSUER, AUDIENCE, algorithms)
    env = {"ORCHESTRATOR_OIDC_JWKS": "/x.json", "ORCHESTRATOR_OIDC_ALGORITHMS": "RS256,HS256"}
    with pytest.raises(SettingsError):
        TokenAuthenticator.from_settings(Settings.from_env({**env, "ORCHESTRATOR_OIDC_ISSUER": ISSUER, "ORCHESTRATOR_OIDC_AUDIENCE": "a"}))
    with pytest.raises(SettingsError, match="ISSUER"):
        TokenAuthenticator.from_settings(Settings.from_env({"ORCHESTRATOR_OIDC_JWKS": "/x.json"}))
    assert TokenAuthenticator.from_settings(Settings()) is None


async def test_an_unknown_kid_reloads_the_file_once(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, jwk(RSA_KEY, "k1"))
    clock = Clock()
    keys = Jwks(str(path), min_reload=30, clock=clock)
    auth = TokenAuthenticator(keys, TokenPolicy(ISSUER, AUDIENCE))
    assert await auth.authenticate(authorization(token()), {}) is not None
    assert keys.loads == 1

    write_jwks(path, jwk(RSA_KEY, "k1"), jwk(OTHER_RSA_KEY, "k2"))  # the provider rotated
    assert await refused(auth, token(OTHER_RSA_KEY, "k2")) == "token_unknown_key"  # too soon
    assert keys.loads == 1
    clock.now += 31
    assert await auth.authenticate(authorization(token(OTHER_RSA_KEY, "k2")), {}) is not None
    assert keys.loads == 2
    for garbage in ("g1", "g2", "g3"):  # made-up key ids cannot make it reload again and again
        assert await refused(auth, token(OTHER_RSA_KEY, garbage)) == "token_unknown_key"
    assert keys.loads == 2
    clock.now += 301  # stale: reloaded on the next use, known kid or not
    await auth.authenticate(authorization(token()), {})
    assert keys.loads == 3


async def test_a_failed_reload_keeps_the_last_good_set(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, jwk(RSA_KEY, "k1"))
    clock = Clock()
    auth = TokenAuthenticator(Jwks(str(path), clock=clock), TokenPolicy(ISSUER, AUDIENCE))
    assert await auth.authenticate(authorization(token()), {}) is not None
    path.write_text("{not json")
    clock.now += 400
    assert await auth.authenticate(authorization(token()), {}) is not None
    missing = TokenAuthenticator(Jwks(str(tmp_path / "absent.json")), TokenPolicy(ISSUER, AUDIENCE))
    assert await refused(missing, token()) == "token_keys_unavailable"


@pytest.fixture
async def jwks_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    served: list[dict[str, Any]] = [jwk(RSA_KEY, "k1")]

    async def keys(request: web.Request) -> web.Response:
        return web.json_response({"keys": served})

    app = web.Application()
    app.router.add_get("/jwks", keys)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/jwks", served
    await runner.cleanup()


async def test_keys_from_a_url_follow_a_rotation(jwks_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, served = jwks_server
    auth = authenticator(url)
    assert await auth.authenticate(authorization(token()), {}) is not None
    served[:] = [jwk(OTHER_RSA_KEY, "k2")]
    principal = await auth.authenticate(authorization(token(OTHER_RSA_KEY, "k2")), {})
    assert principal is not None and principal.subject == "ada"
    assert await refused(auth, token()) == "token_unknown_key"  # the retired key is gone


async def test_claims_map_groups_to_roles_per_tenant(jwks_file: str) -> None:
    rule = ClaimsRule.from_mapping(
        {
            "subject": "email",
            "tenant": "org.tenant",
            "roles": None,
            "groups": "https://example.test/groups",
            "bindings": [
                {"group": "platform-admins", "roles": ["admin"], "tenant": "*"},
                {"group": "ops", "roles": ["operator", "viewer"]},
                {"group": "globex-auditors", "roles": ["auditor"], "tenant": "globex"},
            ],
        }
    )
    auth = authenticator(jwks_file, rule)
    claims = {"email": "ada@example.test", "org": {"tenant": "acme"}, "roles": ["admin"]}
    ops = await auth.authenticate(authorization(token(**claims, **{"https://example.test/groups": "ops globex-auditors"})), {})
    assert ops is not None and ops.subject == "ada@example.test" and ops.tenant == "acme"
    assert dict(ops.roles) == {"acme": ("operator", "viewer"), "globex": ("auditor",)}  # "roles" claim ignored
    admin = await auth.authenticate(authorization(token(**claims, **{"https://example.test/groups": ["platform-admins"]})), {})
    assert admin is not None and admin.roles_in("anything") == ("admin",)
    nobody = await auth.authenticate(authorization(token(**claims)), {})
    assert nobody is not None and dict(nobody.roles) == {}
    assert await refused(auth, token(email=None, org={"tenant": "acme"})) == "token_missing_claim"
    assert await refused(auth, token(email="x", org={"tenant": "Not A Tenant"})) == "token_invalid_tenant"


def test_a_claims_file_is_checked_when_read(tmp_path: Path) -> None:
    good = tmp_path / "claims.yaml"
    good.write_text("groups: groups\nbindings:\n  - group: g\n    roles: [viewer]\n    tenant: acme\n")
    assert ClaimsRule.from_file(str(good)).bindings[0].tenant == "acme"
    assert ClaimsRule.from_file(None) == ClaimsRule()
    for text, message in (
        ("group: g", "unknown keys"),
        ("bindings:\n  - group: g\n", "group and roles"),
        ("bindings:\n  - {group: g, roles: [viewer], tenant: 'Bad Tenant'}\n", "invalid tenant"),
        ("- a list", "mapping"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(SettingsError, match=message):
            ClaimsRule.from_file(str(bad))
