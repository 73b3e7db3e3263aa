"""HTTP(S) check against real asyncio servers on 127.0.0.1, and the pure wire helpers."""

import asyncio
import time

import pytest
from checks_support import SERVICE_NAME, Server, closed_port, make_tls_files, silent

from anycast_ctl.agent.checks import build_check, http_wire, run_check
from anycast_ctl.agent.health import Health
from anycast_ctl.config.node import HttpCheck
from anycast_ctl.errors import UserError


def respond(raw: bytes, requests: list | None = None):
    """A handler that reads the request head, answers `raw` and closes."""

    async def handler(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        if requests is not None:
            requests.append(head)
        writer.write(raw)
        await writer.drain()
        writer.close()

    return handler


def response(status=200, body=b"", headers=()):
    lines = [f"HTTP/1.1 {status} X", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def check_against(handler, timeout=1.0, ssl_context=None, path="/health", scheme="http", **spec):
    async def main():
        async with Server(handler, ssl_context) as server:
            url = f"{scheme}://127.0.0.1:{server.port}{path}"
            return await run_check(
                build_check("web", HttpCheck(type="http", url=url, **spec)), timeout
            )

    return asyncio.run(main())


def test_expected_status_is_ok_and_request_is_minimal_http11():
    requests = []
    result = check_against(respond(response(200), requests), path="/health?deep=1")
    assert (result.health, result.detail, result.extra) == (Health.OK, "HTTP 200", {"status": 200})
    lines = requests[0].decode().split("\r\n")
    assert lines[0] == "GET /health?deep=1 HTTP/1.1"
    assert "Connection: close" in lines
    assert any(line.startswith("Host: 127.0.0.1:") for line in lines)


def test_wrong_status_is_soft():
    result = check_against(respond(response(503)))
    assert (result.health, result.detail) == (Health.SOFT_FAIL, "HTTP 503, expected 200")


def test_any_listed_status_is_accepted():
    result = check_against(respond(response(204)), expect_status=[200, 204])
    assert result.health is Health.OK


def test_body_regex_match_and_mismatch():
    ok = check_against(
        respond(response(200, b'{"status": "ready"}')), body_regex=r'"status":\s*"ready"'
    )
    bad = check_against(
        respond(response(200, b'{"status": "starting"}')), body_regex=r'"status":\s*"ready"'
    )
    assert (ok.health, ok.detail) == (Health.OK, "HTTP 200, body matches")
    assert bad.health is Health.SOFT_FAIL
    assert bad.detail == 'HTTP 200, body does not match /"status":\\s*"ready"/'


def test_body_regex_sees_through_chunked_encoding():
    chunked = b"5\r\nrea\r\n\r\n3\r\ndy!\r\n0\r\n\r\n"  # "rea\r\n" + "dy!" -- split across chunks
    raw = response(200, chunked, headers=("Transfer-Encoding: chunked",))
    assert check_against(respond(raw), body_regex=r"rea\r\ndy!").health is Health.OK


def test_body_beyond_the_cap_is_not_searched():
    body = b"x" * (http_wire.BODY_CAP + 10) + b"MARKER"
    assert (
        check_against(respond(response(200, body)), body_regex="MARKER").health is Health.SOFT_FAIL
    )
    early = b"MARKER" + body
    assert check_against(respond(response(200, early)), body_regex="MARKER").health is Health.OK


def test_body_until_close_without_length():
    raw = b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nall good"
    assert check_against(respond(raw), body_regex="all good").health is Health.OK


def test_not_http_is_soft_with_reason():
    result = check_against(respond(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"))
    assert result.health is Health.SOFT_FAIL
    assert result.detail.startswith(
        "not an HTTP/1.x status line: b'SSH-2.0-OpenSSH_9.2': http://127.0.0.1:"
    )


def test_closed_without_answer_is_soft():
    result = check_against(respond(b""))
    assert result.health is Health.SOFT_FAIL
    assert result.detail.startswith("connection closed before a response")


def test_silent_server_times_out_soft_within_the_timeout():
    started = time.monotonic()
    result = check_against(silent, timeout=0.3)
    assert result.health is Health.SOFT_FAIL
    assert result.detail.startswith("timed out after 0.3s")
    assert time.monotonic() - started < 0.3 + 0.3


def test_closed_port_is_hard():
    port, sock = closed_port()
    try:
        check = build_check("web", HttpCheck(type="http", url=f"http://127.0.0.1:{port}/"))
        result = asyncio.run(run_check(check, 1.0))
    finally:
        sock.close()
    assert (result.health, result.detail) == (
        Health.HARD_FAIL,
        f"connection refused: http://127.0.0.1:{port}/",
    )


# ---------------------------------------------------------------- HTTPS
@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def test_https_with_trusted_ca_and_server_name_is_ok_and_sends_server_name_as_host(tls):
    requests = []
    result = check_against(
        respond(response(200), requests),
        ssl_context=tls.server_context("good"),
        scheme="https",
        ca_file=tls.ca,
        server_name=SERVICE_NAME,
    )
    assert result.health is Health.OK
    assert f"Host: {SERVICE_NAME}" in requests[0].decode().split("\r\n")


def test_https_by_ip_verifies_the_ip_san(tls):
    result = check_against(
        respond(response(200)),
        ssl_context=tls.server_context("good"),
        scheme="https",
        ca_file=tls.ca,
    )
    assert result.health is Health.OK


def test_https_untrusted_ca_is_soft_with_reason(tls):
    result = check_against(
        respond(response(200)),
        ssl_context=tls.server_context("untrusted"),
        scheme="https",
        ca_file=tls.ca,
        server_name=SERVICE_NAME,
    )
    assert result.health is Health.SOFT_FAIL
    assert result.detail.startswith(
        "TLS verification failed: unable to get local issuer certificate"
    )


def test_https_wrong_server_name_is_soft_with_reason(tls):
    result = check_against(
        respond(response(200)),
        ssl_context=tls.server_context("good"),
        scheme="https",
        ca_file=tls.ca,
        server_name="other.test",
    )
    assert result.health is Health.SOFT_FAIL
    assert "Hostname mismatch" in result.detail and "other.test" in result.detail


def test_https_insecure_skips_verification(tls):
    result = check_against(
        respond(response(200)),
        ssl_context=tls.server_context("untrusted"),
        scheme="https",
        ca_file=tls.ca,
        server_name="other.test",
        insecure=True,
    )
    assert result.health is Health.OK


def test_missing_ca_file_is_a_config_error(tmp_path):
    spec = HttpCheck(type="http", url="https://127.0.0.1/", ca_file=tmp_path / "nope.pem")
    with pytest.raises(UserError) as info:
        build_check("web", spec)
    assert info.value.problems[0].where == "checks.web.ca_file"


@pytest.mark.parametrize(
    "url, where_what",
    [
        ("http://user:pw@127.0.0.1/", "credentials in the URL are not supported"),
        ("http://127.0.0.1/a b", "the path must not contain whitespace (percent-encode it)"),
        ("http://127.0.0.1:99999/", "Port out of range 0-65535"),
    ],
)
def test_bad_url_is_a_config_error(url, where_what):
    with pytest.raises(UserError) as info:
        build_check("web", HttpCheck(type="http", url=url))
    assert (info.value.problems[0].where, info.value.problems[0].what) == (
        "checks.web.url",
        where_what,
    )


# ---------------------------------------------------------------- pure wire helpers
def test_ipv6_url_host_header_is_bracketed():
    check = build_check("web", HttpCheck(type="http", url="http://[::1]:8080/x"))
    assert b"Host: [::1]:8080\r\n" in check.request
    assert check.target == "http://[::1]:8080/x"


def test_parse_head_status_and_headers():
    head = http_wire.parse_head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 12\r\nX-A:  b ")
    assert (head.status, head.headers, head.content_length, head.chunked) == (
        404,
        {"content-length": "12", "x-a": "b"},
        12,
        False,
    )


@pytest.mark.parametrize(
    "head, what",
    [
        (b"HTTP/2 200", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 20 OK", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here", "bad header line"),
    ],
)
def test_parse_head_rejects_garbage(head, what):
    with pytest.raises(UserError) as info:
        http_wire.parse_head(head)
    assert info.value.problems[0].what.startswith(what)


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"3\r\nabc\r\n0\r\n\r\n", (b"abc", True)),
        (b"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n", (b"abc0123456789", True)),
        (b"3\r\nabc\r\n", (b"abc", False)),
        (b"5\r\nab", (b"ab", False)),
        (b"", (b"", False)),
    ],
)
def test_dechunk(raw, expected):
    assert http_wire.dechunk(raw) == expected


def test_dechunk_rejects_bad_size():
    with pytest.raises(UserError):
        http_wire.dechunk(b"zz\r\nabc\r\n")


def test_body_complete_by_length_and_by_last_chunk():
    sized = http_wire.parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3")
    chunked = http_wire.parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked")
    eof = http_wire.parse_head(b"HTTP/1.1 200 OK")
    assert not http_wire.body_complete(sized, b"ab") and http_wire.body_complete(sized, b"abc")
    assert http_wire.body_complete(chunked, b"0\r\n\r\n") and not http_wire.body_complete(
        chunked, b"1\r\na"
    )
    assert not http_wire.body_complete(eof, b"anything")
    assert http_wire.decode_body(sized, b"abcdef") == "abc"
