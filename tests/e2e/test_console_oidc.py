"""Signing in to the console with an OIDC token: a JWT signed by a key of the configured JWKS
opens the same kind of session an API key does, with the roles its claims map to; a token the
JWKS did not sign is refused on the page."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from playwright.sync_api import Page, expect

from tests.e2e.console_browser import Console, console_server

ISSUER = "https://id.example.test/"
SIGNER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("oidc")
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**RSAAlgorithm.to_jwk(SIGNER.public_key(), as_dict=True), "kid": "k"}]}))
    env = {"ORCHESTRATOR_OIDC_JWKS": str(jwks), "ORCHESTRATOR_OIDC_ISSUER": ISSUER, "ORCHESTRATOR_OIDC_AUDIENCE": "orchestrator"}
    yield from console_server(tmp, env)


def token(roles: list[str], signer: rsa.RSAPrivateKey = SIGNER) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "orchestrator", "sub": "grace", "exp": now + 600, "roles": roles}
    return jwt.encode(claims, signer, algorithm="RS256", headers={"kid": "k"})


def sign_in(console: Console, credential: str) -> Page:
    page = console.page()
    page.goto(console.url + "/console/executions")
    page.get_by_label("API key or OIDC token").fill(credential)
    page.get_by_role("button", name="Sign in").click()
    return page


def test_an_oidc_token_signs_in_with_the_roles_of_its_claims(console: Console) -> None:
    status, started = console.api("POST", "/api/v1/executions", {"workflow": "console_flow", "input": {"id": "o"}})
    assert status == 202, started
    page = sign_in(console, token(["viewer"]))
    expect(page.get_by_test_id("who")).to_contain_text("session:grace")
    page.goto(console.url + f"/console/executions/{started['execution_id']}")
    expect(page.get_by_test_id("execution-id")).to_have_text(started["execution_id"])
    expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
    assert console.problems == []


def test_a_token_from_another_signer_is_refused(console: Console) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    page = sign_in(console, token(["admin"], stranger))
    expect(page.get_by_role("alert")).to_contain_text("signature")
    expect(page.get_by_test_id("who")).to_have_count(0)
    console.problems.clear()  # the refused login's 401 is logged by the browser, as it should be
