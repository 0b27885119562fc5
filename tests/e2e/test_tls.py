"""``orchestrator serve`` over TLS: a real TLS client against a certificate made here, the session
cookie marked Secure, and clients that do not trust the certificate or speak plain HTTP refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from orchestrator.auth.sessions import SESSION_COOKIE
from orchestrator.settings import Settings, SettingsError
from tests.certs import self_signed
from tests.e2e.serverproc import REPO, cli_env
from tests.e2e.test_server import serve


async def stop(server: asyncio.Task[None]) -> None:
    server.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await server


async def test_serves_https_to_a_client_that_trusts_the_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [RSAAlgorithm.to_jwk(signer.public_key(), as_dict=True)]}))
    settings = Settings(
        event_log_url="memory://",
        port=0,
        tls_cert=cert,
        tls_key=key,
        oidc_jwks=str(jwks),
        oidc_issuer="https://id.example.test/",
        oidc_audience="orchestrator",
    )
    server, url = await serve(settings)
    try:
        assert url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=cert)
        claims = {"iss": settings.oidc_issuer, "aud": "orchestrator", "sub": "ada", "exp": int(time.time()) + 60}
        token = jwt.encode(claims, signer, algorithm="RS256")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as client:
            async with client.get(url + "/healthz") as response:
                assert response.status == 200
            async with client.post(url + "/api/v1/sessions", headers={"Authorization": f"Bearer {token}"}) as login:
                assert login.status == 201, await login.text()
                cookie = login.cookies[SESSION_COOKIE]
                assert cookie["secure"] is True and cookie["httponly"] is True and cookie["samesite"] == "Strict"

        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trusting, server_hostname="localhost")
        tls = writer.get_extra_info("ssl_object")
        assert tls is not None and tls.version() in ("TLSv1.2", "TLSv1.3")
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()

        async with aiohttp.ClientSession() as untrusting:  # the system CAs do not know this cert
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await untrusting.get(url + "/healthz")
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(aiohttp.ClientError):
                await plain.get(url.replace("https://", "http://") + "/healthz")
    finally:
        await stop(server)


async def test_tls_settings_are_checked_before_serving(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with pytest.raises(SettingsError, match="set together"):
        await serve(Settings(event_log_url="memory://", port=0, tls_cert=cert))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(SettingsError, match="cannot load the TLS certificate"):
        await serve(Settings(event_log_url="memory://", port=0, tls_cert=str(tmp_path / "junk.pem"), tls_key=key))
    env = {"ORCHESTRATOR_TLS_CERT": cert, "ORCHESTRATOR_TLS_KEY": key}
    assert (Settings.from_env(env).tls_cert, Settings.from_env(env).tls_key) == (cert, key)


def test_the_cli_serves_https_and_a_remote_command_trusts_it_through_ssl_cert_file(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    env = cli_env(
        f"sqlite:///{tmp_path}/tls.db", {"ORCHESTRATOR_TLS_CERT": cert, "ORCHESTRATOR_TLS_KEY": key}
    )
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", "0"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = ""
        deadline = time.monotonic() + 30
        while not url and time.monotonic() < deadline and server.poll() is None:
            found = re.search(r"serving on (https://\S+)", log.read_text())
            url = found.group(1) if found else ""
            time.sleep(0.1)
        assert url.startswith("https://127.0.0.1:"), log.read_text()

        def remote(*extra: tuple[str, str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "orchestrator", "definitions", "--json"],
                cwd=REPO, env={**env, "ORCHESTRATOR_URL": url, **dict(extra)},
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip

        trusted = remote(("SSL_CERT_FILE", cert))
        assert trusted.returncode == 0, trusted.stderr
        assert json.loads(trusted.stdout) == []  # no definitions registered
        untrusted = remote()
        assert untrusted.returncode != 0 and "Traceback" not in untrusted.stderr
        assert len(untrusted.stderr.strip().splitlines()) == 1
    finally:
        server.terminate()
        server.wait(timeout=30)
