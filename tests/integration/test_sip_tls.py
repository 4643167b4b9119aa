"""SIP over TLS (RFC 3261 §26.2.1): a phone registers with digest auth over a TLS connection
to vpbx's transport; the binding remembers TLS; a client that does not trust the certificate
gets no service and the listener keeps serving others. Certificates are made by openssl."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from vpbx_server import VpbxServer, vpbx_env

from vpbx.io.sip_transport import SipTransport
from vpbx.sip import DigestClient, Request, Response, TransactionLayer, new_branch, parse_message
from vpbx.sip_service import SipService, build_service

REALM = "tls.test"


def make_certificate(tmp: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is missing: apt-get install -y openssl")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"]
    args += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        [openssl, *args],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def register(local: tuple[str, int], cseq: int) -> Request:
    text = (
        f"REGISTER sip:{REALM} SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS {local[0]}:{local[1]};branch={new_branch()};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:1001@{REALM}>;tag=tls1\r\nTo: <sip:1001@{REALM}>\r\n"
        f"Call-ID: tls-reg@{local[0]}\r\nCSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:1001@{local[0]}:{local[1]};transport=tls>\r\n"
        "Expires: 300\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


async def read_response(reader: asyncio.StreamReader) -> Response:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
    message = parse_message(head)
    assert isinstance(message, Response)
    return message


async def scenario(cert: Path, key: Path) -> tuple[list[int], str, bool]:
    service: SipService = build_service(REALM, [("1001", "s3cret")])
    transport = SipTransport(TransactionLayer(), service.on_action, guard=service.registrar.guard)
    service.responder = transport
    await transport.listen("127.0.0.1", 0)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    host, port = await transport.listen_tls("127.0.0.1", 0, server_ctx)
    try:
        # A client that does not trust the certificate: the handshake fails on its side.
        untrusting = ssl.create_default_context()
        refused = False
        try:
            await asyncio.wait_for(asyncio.open_connection(host, port, ssl=untrusting), 5.0)
        except ssl.SSLCertVerificationError:
            refused = True
        # A phone that trusts it registers over one connection.
        client_ctx = ssl.create_default_context(cafile=str(cert))
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=client_ctx), 5.0)
        local = writer.get_extra_info("sockname")[:2]
        first = register(local, 1)
        writer.write(first.to_bytes())
        challenge = await read_response(reader)
        digest = DigestClient("1001", "s3cret")
        assert digest.on_challenge(challenge)
        second = register(local, 2)
        digest.authorize(second)
        writer.write(second.to_bytes())
        ok = await read_response(reader)
        writer.close()
        await writer.wait_closed()  # else the TLS socket is left for the GC (ResourceWarning)
        bindings = service.registrar.location.bindings("1001", 0.0)
        transports = ",".join(b.transport for b in bindings)
        return [challenge.status, ok.status], transports, refused
    finally:
        transport.close()
        await asyncio.sleep(0.1)  # let the server side's TLS connections finish closing


def test_register_over_tls_and_untrusting_client_refused(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    statuses, transports, refused = asyncio.run(scenario(cert, key))
    assert statuses == [401, 200]
    assert transports == "TLS"
    assert refused


def test_vpbx_serve_takes_registrations_over_tls(tmp_path: Path) -> None:
    """`vpbx serve --sip-tls-listen` with a certificate: a phone registers over TLS with the
    account made by `--user`, and /health names the TLS address."""
    cert, key = make_certificate(tmp_path)
    args = ["--data-dir", str(tmp_path / "data"), "serve", "--sip-listen", "127.0.0.1:0"]
    args += ["--http-listen", "127.0.0.1:0", "--realm", REALM, "--user", "1001:s3cret"]
    args += ["--sip-tls-listen", "127.0.0.1:0", "--sip-tls-cert", str(cert), "--sip-tls-key", str(key)]
    server = VpbxServer(args).start()
    try:
        assert server.sip_tls is not None, server.output

        async def phone() -> list[int]:
            assert server.sip_tls is not None
            context = ssl.create_default_context(cafile=str(cert))
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*server.sip_tls, ssl=context), 5.0
            )
            local = writer.get_extra_info("sockname")[:2]
            writer.write(register(local, 1).to_bytes())
            challenge = await read_response(reader)
            digest = DigestClient("1001", "s3cret")
            assert digest.on_challenge(challenge)
            second = register(local, 2)
            digest.authorize(second)
            writer.write(second.to_bytes())
            ok = await read_response(reader)
            writer.close()
            await writer.wait_closed()
            return [challenge.status, ok.status]

        assert asyncio.run(phone()) == [401, 200]
        assert server.http is not None
        with urllib.request.urlopen(f"http://{server.http[0]}:{server.http[1]}/health", timeout=5) as r:
            health = json.loads(r.read())
        assert health["sip_tls"] == "{}:{}".format(*server.sip_tls)
        assert health["registrations"] == 1
    finally:
        server.stop()


def test_tls_listen_without_certificate_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vpbx",
            "--data-dir",
            str(tmp_path),
            "serve",
            "--sip-tls-listen",
            "127.0.0.1:0",
        ],
        env=vpbx_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "sip_tls_listen needs sip_tls_cert and sip_tls_key" in result.stderr
