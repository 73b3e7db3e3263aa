"""TLS check against real TLS servers on 127.0.0.1 with a throwaway CA."""

import asyncio
import datetime as dt
import time

import pytest
from checks_support import SERVICE_NAME, Server, closed_port, make_tls_files, silent

from anycast_ctl.agent.checks import build_check, run_check
from anycast_ctl.agent.checks.tls import assess_expiry, days_left
from anycast_ctl.agent.health import Health
from anycast_ctl.config.node import TlsCheck


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


async def _hold(reader, writer):
    await reader.read()  # until the client goes away


def check_against(tls, label, timeout=1.0, handler=_hold, use_tls=True, **spec):
    spec = {"server_name": SERVICE_NAME, "ca_file": tls.ca, **spec}

    async def main():
        async with Server(handler, tls.server_context(label) if use_tls else None) as server:
            check = build_check("cert", TlsCheck(type="tls", port=server.port, **spec))
            return await run_check(check, timeout)

    return asyncio.run(main())


def test_valid_certificate_is_ok_and_reports_days_left(tls):
    result = check_against(tls, "good", min_days_valid=14)
    assert result.health is Health.OK
    assert 29.9 < result.extra["days_left"] <= 30
    assert result.extra["not_after"] == tls.not_after["good"].isoformat()
    assert result.detail.startswith("certificate valid, expires in 30.0 days")


def test_certificate_expiring_soon_is_soft(tls):
    result = check_against(tls, "near", min_days_valid=14)
    assert result.health is Health.SOFT_FAIL
    assert 4.9 < result.extra["days_left"] <= 5
    assert result.detail.startswith("certificate expires in 5.0 days (")
    assert result.detail.endswith("fewer than min_days_valid 14")


def test_expired_certificate_is_soft(tls):
    result = check_against(tls, "expired")
    assert result.health is Health.SOFT_FAIL
    assert result.detail.startswith("TLS verification failed: certificate has expired")


def test_wrong_server_name_is_soft(tls):
    result = check_against(tls, "good", server_name="other.test")
    assert result.health is Health.SOFT_FAIL
    assert result.detail.startswith("TLS verification failed: Hostname mismatch")


def test_untrusted_ca_is_soft(tls):
    result = check_against(tls, "untrusted")
    assert result.health is Health.SOFT_FAIL
    assert result.detail.startswith(
        "TLS verification failed: unable to get local issuer certificate"
    )


def test_system_bundle_does_not_trust_a_private_ca(tls):
    result = check_against(tls, "good", ca_file=None)
    assert result.health is Health.SOFT_FAIL
    assert result.detail.startswith("TLS verification failed:")


def check_against_plain(handler):
    async def main():
        async with Server(handler) as server:
            check = build_check(
                "cert", TlsCheck(type="tls", port=server.port, server_name=SERVICE_NAME)
            )
            return await run_check(check, 1.0)

    return asyncio.run(main())


def test_plaintext_server_is_soft():
    async def say_hello(reader, writer):
        writer.write(b"220 not tls\r\n")
        await writer.drain()
        await reader.read()

    result = check_against_plain(say_hello)
    assert result.health is Health.SOFT_FAIL
    assert result.detail.startswith("TLS error:")


def test_silent_server_times_out_soft_within_the_timeout(tls):
    started = time.monotonic()
    result = check_against(tls, "good", timeout=0.3, handler=silent, use_tls=False)
    assert result.health is Health.SOFT_FAIL
    assert result.detail.startswith("timed out after 0.3s")
    assert time.monotonic() - started < 0.3 + 0.3


def test_closed_port_is_hard():
    port, sock = closed_port()
    try:
        check = build_check("cert", TlsCheck(type="tls", port=port, server_name=SERVICE_NAME))
        result = asyncio.run(run_check(check, 1.0))
    finally:
        sock.close()
    assert result.health is Health.HARD_FAIL
    assert result.detail == f"connection refused: 127.0.0.1:{port} ({SERVICE_NAME})"


@pytest.mark.parametrize(
    "days_after_now, minimum, health",
    [(30, 14, Health.OK), (14, 14, Health.OK), (13.9, 14, Health.SOFT_FAIL), (0.5, 0, Health.OK)],
)
def test_assess_expiry_threshold(days_after_now, minimum, health):
    now = 1_700_000_000.0
    not_after = dt.datetime.fromtimestamp(now + days_after_now * 86400, dt.UTC)
    assert days_left(not_after, now) == pytest.approx(days_after_now)
    assert assess_expiry(not_after, now, minimum).health is health
