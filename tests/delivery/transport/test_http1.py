"""The built-in HTTP/1.1 client (`delivery.transport.http1`): its parser, its request heads, its pool.

`parse_response` is tested on bytes alone, with no socket: every framing the
engine meets (Content-Length, chunked, close-delimited, interim statuses) and
every way a response can be broken. `_target` is tested on the request head
it builds. `Client` is tested against the loopback servers of `faults.py`:
keep-alive reuse, the per-host limit, timeouts, on asyncio's loop and on
uvloop's.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop

from delivery.transport import UNCLASSIFIED_CODE, Response, TransportError, http1
from delivery.transport.errors import transport_error
from delivery.transport.http1 import (
    MAX_CHUNK_LINE,
    MAX_HEAD_BYTES,
    MAX_LINE_BYTES,
    TABLE,
    BadResponse,
    Client,
    ConnectTimeout,
    InterimStatusOnly,
    ProxyAnswered,
    ServerDisconnected,
    _Parsed,
    _Slots,
    _target,
    parse_response,
)
from delivery.transport.targets import PRIVATE_ALLOWED, TargetRefused
from ingest.taxonomy import TRANSPORT_CODES, Classification, ErrorClass, classify_transport
from tests.delivery.faults import Exchange, FaultServer, keep_alive, never_answer

PAYLOAD = b'{"type": "track", "event": "Signed Up"}'
HEADERS = {"Content-Type": "application/json"}
LIMIT = 1024
OK_KEEP_ALIVE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
PROJECT = Path(__file__).resolve().parents[3]


def parse(raw: bytes, *, eof: bool = False, read_limit: int = LIMIT) -> _Parsed:
    """`raw` parsed, asserting that it holds a whole response."""
    parsed = parse_response(raw, eof, read_limit)
    assert parsed is not None
    return parsed


def head(*lines: str) -> bytes:
    """A response head (CRLF line ends, with its blank line) from its lines."""
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)


CHUNKED_HEAD = head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked")


# -- parse_response: framing ---------------------------------------------------------------------


def test_a_content_length_body() -> None:
    parsed = parse(head("HTTP/1.1 201 Created", "Content-Length: 5", "Content-Type: text/plain") + b"hello")
    assert parsed.status == 201
    assert parsed.headers == {"content-length": "5", "content-type": "text/plain"}
    assert parsed.body == b"hello"
    assert parsed.reusable


def test_a_response_split_anywhere_is_not_complete_until_its_last_byte() -> None:
    raw = head("HTTP/1.1 200 OK", "Content-Length: 11") + b"hello world"
    for cut in range(len(raw)):
        assert parse_response(raw[:cut], False, LIMIT) is None, raw[:cut]
    parsed = parse(raw)
    assert parsed.body == b"hello world"
    assert parsed.reusable


def test_a_bytearray_buffer_is_read_like_bytes() -> None:
    parsed = parse_response(bytearray(OK_KEEP_ALIVE), False, LIMIT)
    assert parsed is not None
    assert parsed.body == b"ok"
    assert type(parsed.body) is bytes


def test_bytes_after_the_body_make_the_connection_not_reusable() -> None:
    parsed = parse(OK_KEEP_ALIVE + b"HTTP/1.1 200 OK\r\n")
    assert parsed.body == b"ok"
    assert not parsed.reusable


def test_a_chunked_body_with_extensions() -> None:
    raw = CHUNKED_HEAD + b'5;x=y\r\nhello\r\n1\r\n \r\n5;name="q";a=b\r\nworld\r\n0\r\n\r\n'
    parsed = parse(raw)
    assert parsed.body == b"hello world"
    assert parsed.headers == {"transfer-encoding": "chunked"}
    assert parsed.reusable


def test_a_chunked_body_split_anywhere_is_not_complete_before_its_last_chunk() -> None:
    body = chunked(b"hello", b" ", b"world")
    for cut in range(len(CHUNKED_HEAD) + len(body)):
        assert parse_response((CHUNKED_HEAD + body)[:cut], False, LIMIT) is None
    parsed = parse(CHUNKED_HEAD + body + b"0\r\n\r\n")
    assert parsed.body == b"hello world"
    assert parsed.reusable


def test_a_chunked_body_with_a_trailer_is_read_to_the_trailer_s_end() -> None:
    raw = CHUNKED_HEAD + chunked(b"hello") + b"0\r\nX-Checksum: abc\r\nX-B: c\r\n\r\n"
    for cut in range(len(raw)):
        assert parse_response(raw[:cut], False, LIMIT) is None, raw[:cut]
    parsed = parse(raw)
    assert parsed.body == b"hello"
    assert parsed.headers == {"transfer-encoding": "chunked"}  # trailer fields are not headers
    assert parsed.reusable


def test_a_chunked_body_cut_by_the_end_of_the_connection() -> None:
    raw = CHUNKED_HEAD + chunked(b"hello") + b"5\r\nwor"
    assert parse_response(raw, False, LIMIT) is None
    with pytest.raises(ConnectionResetError):
        parse_response(raw, True, LIMIT)


def test_a_chunked_body_longer_than_the_read_limit_is_cut_and_costs_the_connection() -> None:
    parsed = parse(CHUNKED_HEAD + chunked(b"hello", b"world"), read_limit=7)
    assert parsed.body == b"hellowo"
    assert not parsed.reusable


def test_a_malformed_chunk_size() -> None:
    with pytest.raises(BadResponse):
        parse_response(CHUNKED_HEAD + b"zz\r\nhello\r\n", False, LIMIT)


def test_a_negative_chunk_size_is_refused_not_looped_on() -> None:
    # In a child process: int("-6", 16) once sent the parser round the same line forever,
    # which would hang the test run rather than fail it.
    code = textwrap.dedent(
        """
        from delivery.transport.http1 import parse_response
        raw = b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n-6\\r\\n"
        try:
            parse_response(raw, False, 1024)
        except Exception as error:
            print(type(error).__name__)
        else:
            print("no error")
        """
    )
    try:
        child = subprocess.run(
            [sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=5
        )
    except subprocess.TimeoutExpired:
        pytest.fail("parse_response did not return on a chunk size of -6")
    assert child.stdout.strip() == "BadResponse", child.stderr


def test_a_head_with_lf_line_ends() -> None:
    parsed = parse(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
    assert (parsed.status, parsed.headers, parsed.body) == (200, {"content-length": "2"}, b"ok")
    assert parsed.reusable


def test_a_body_longer_than_the_read_limit_is_not_waited_for() -> None:
    # 4 of 10 bytes arrived: enough for a 4-byte read limit; the connection is given up.
    parsed = parse(head("HTTP/1.1 200 OK", "Content-Length: 10") + b"0123", read_limit=4)
    assert parsed.body == b"0123"
    assert not parsed.reusable
    parsed = parse(head("HTTP/1.1 500 X", "Content-Length: 10") + b"012345", read_limit=4)
    assert parsed.body == b"0123"
    assert not parsed.reusable


def test_a_body_longer_than_the_read_limit_that_arrived_whole_is_cut() -> None:
    # The buffer holds exactly this response, so the connection stays clean and reusable.
    parsed = parse(head("HTTP/1.1 200 OK", "Content-Length: 10") + b"0123456789", read_limit=4)
    assert parsed.body == b"0123"
    assert parsed.reusable


def test_a_body_that_the_close_ends() -> None:
    raw = head("HTTP/1.1 200 OK", "Content-Type: text/plain") + b"all of "
    assert parse_response(raw, False, LIMIT) is None
    assert parse_response(raw + b"it", False, LIMIT) is None
    parsed = parse(raw + b"it", eof=True)
    assert parsed.body == b"all of it"
    assert not parsed.reusable


def test_a_body_that_the_close_ends_is_not_waited_for_past_the_read_limit() -> None:
    parsed = parse(head("HTTP/1.1 200 OK") + b"0123456789", read_limit=4)
    assert parsed.body == b"0123"
    assert not parsed.reusable


def test_an_empty_body_that_the_close_ends() -> None:
    raw = head("HTTP/1.1 200 OK")
    assert parse_response(raw, False, LIMIT) is None
    parsed = parse(raw, eof=True)
    assert parsed.body == b""
    assert not parsed.reusable


@pytest.mark.parametrize("value", ["close", "Close", "keep-alive, close"])
def test_connection_close_makes_the_connection_not_reusable(value: str) -> None:
    parsed = parse(head("HTTP/1.1 200 OK", "Content-Length: 2", f"Connection: {value}") + b"ok")
    assert parsed.body == b"ok"
    assert not parsed.reusable


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_only_http_1_1_connections_are_reusable(version: str) -> None:
    parsed = parse(head(f"HTTP/{version} 200 OK", "Content-Length: 2") + b"ok")
    assert parsed.status == 200
    assert parsed.body == b"ok"
    assert not parsed.reusable


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    parsed = parse(head(f"HTTP/1.1 {status} X"))  # eof False: nothing more is waited for
    assert parsed.status == status
    assert parsed.body == b""
    assert parsed.reusable


@pytest.mark.parametrize("status", [204, 304])
def test_bytes_after_a_no_body_response_make_the_connection_not_reusable(status: int) -> None:
    parsed = parse(head(f"HTTP/1.1 {status} X") + b"junk")
    assert parsed.body == b""
    assert not parsed.reusable


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses_ignore_content_length(status: int) -> None:
    # RFC 9110 8.6: a 304 may carry the Content-Length the full response would have had.
    parsed = parse_response(head(f"HTTP/1.1 {status} X", "Content-Length: 1234"), False, LIMIT)
    assert parsed is not None
    assert parsed.body == b""
    assert parsed.reusable


def test_a_101_response_does_not_leave_the_connection_reusable() -> None:
    parsed = parse(head("HTTP/1.1 101 Switching Protocols", "Connection: Upgrade", "Upgrade: websocket"))
    assert parsed.status == 101
    assert not parsed.reusable


def test_any_status_number_is_a_response() -> None:
    assert parse(head("HTTP/1.1 42 Weird", "Content-Length: 0")).status == 42
    assert parse(head("HTTP/1.1 32767 Max", "Content-Length: 0")).status == 32767
    assert parse(head("HTTP/1.1 404", "Content-Length: 0")).status == 404  # no reason phrase


# -- parse_response: headers ---------------------------------------------------------------------


def test_header_names_are_lower_cased_and_values_stripped() -> None:
    raw = head("HTTP/1.1 200 OK", "Content-LENGTH: 0", "X-Request-ID:   abc  ", "retry-after:120")
    headers = parse(raw).headers
    assert headers == {"content-length": "0", "x-request-id": "abc", "retry-after": "120"}


def test_duplicate_headers_are_joined() -> None:
    raw = head("HTTP/1.1 200 OK", "Set-Cookie: a=1", "Content-Length: 0", "set-cookie: b=2", "SET-COOKIE: c")
    assert parse(raw).headers["set-cookie"] == "a=1, b=2, c"


@pytest.mark.parametrize("line", ["NoColonHere", ": no name", "   : blank name"])
def test_a_malformed_header_line(line: str) -> None:
    with pytest.raises(BadResponse):
        parse_response(head("HTTP/1.1 200 OK", "Content-Length: 0", line), False, LIMIT)


@pytest.mark.parametrize("value", ["abc", "", "2x", "-1", "-100"])
def test_a_bad_content_length(value: str) -> None:
    with pytest.raises(BadResponse):
        parse_response(head("HTTP/1.1 200 OK", f"Content-Length: {value}") + b"ok", False, LIMIT)


@pytest.mark.parametrize(
    "fields",
    [
        ("Content-Length: 3", "Transfer-Encoding: chunked"),
        ("Transfer-Encoding: chunked", "Content-Length: 3"),
        ("Transfer-Encoding: chunked", "Content-Length: 0"),
    ],
)
def test_transfer_encoding_with_content_length_is_refused(fields: tuple[str, str]) -> None:
    # RFC 9112 6.1: chunked would win, but the pair is how responses are smuggled.
    raw = head("HTTP/1.1 200 OK", *fields) + chunked(b"hello") + b"0\r\n\r\n"
    with pytest.raises(BadResponse, match="both Transfer-Encoding and Content-Length"):
        parse_response(raw, False, LIMIT)


# -- parse_response: framing it does not fully understand is refused (RFC 9112) -----------------

#: What a desync would read as the answer: a whole response after the broken framing.
HIDDEN = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhidden"


def refused(raw: bytes, match: str) -> None:
    """`raw` is refused with a message matching `match`, with or without the hidden response after it."""
    for tail in (b"", HIDDEN):
        with pytest.raises(BadResponse, match=match):
            parse_response(raw + tail, True, LIMIT)


@pytest.mark.parametrize(
    "coding",
    [
        "xchunked",
        "chunkedx",
        "chunked, chunked",
        "gzip, chunked",
        "chunked, gzip",
        "identity",
        "chunked;q=1",
        "",
    ],
)
def test_a_transfer_coding_other_than_chunked_alone_is_refused(coding: str) -> None:
    refused(head("HTTP/1.1 200 OK", f"Transfer-Encoding: {coding}") + b"0\r\n\r\n", "a transfer coding other")


@pytest.mark.parametrize("coding", ["chunked", "Chunked", "CHUNKED"])
def test_chunked_is_a_case_insensitive_name(coding: str) -> None:
    parsed = parse(head("HTTP/1.1 200 OK", f"Transfer-Encoding: {coding}") + chunked(b"ok") + b"0\r\n\r\n")
    assert (parsed.body, parsed.reusable) == (b"ok", True)


def test_two_transfer_encoding_fields_are_refused() -> None:
    raw = head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked")
    refused(raw + b"0\r\n\r\n", "a transfer coding other")


def test_transfer_encoding_in_an_http_1_0_response_is_refused() -> None:
    # RFC 9112 6.1: the framing is faulty; HTTP/1.0 has no chunked coding.
    refused(head("HTTP/1.0 200 OK", "Transfer-Encoding: chunked") + b"0\r\n\r\n", "not HTTP/1.1")


@pytest.mark.parametrize(
    "fields",
    [
        ("Content-Length: 2", "Content-Length: 2"),
        ("Content-Length: 2, 2",),
        ("Content-Length: 2", "Content-Length: 6"),
        ("Content-Length: +2",),
        ("Content-Length: 0x2",),
        ("Content-Length: 2.0",),
        ("Content-Length: 2 2",),
        ("Content-Length: " + "9" * 19,),
    ],
)
def test_a_content_length_that_is_not_one_number_is_refused(fields: tuple[str, ...]) -> None:
    refused(head("HTTP/1.1 200 OK", *fields) + b"ok", "a Content-Length that is not one number")


def test_a_content_length_with_whitespace_around_it_is_read() -> None:
    parsed = parse(b"HTTP/1.1 200 OK\r\nContent-Length: \t2 \t\r\n\r\nok")
    assert (parsed.headers["content-length"], parsed.body, parsed.reusable) == ("2", b"ok", True)


@pytest.mark.parametrize(
    "line",
    [
        b"0x5",
        b"+5",
        b"-5",
        b"1_0",
        b" 5",
        b"5 ",
        b"5 ;x=y",
        b"5;",
        b"5;=y",
        b"5;x=",
        b'5;x="open',
        b"5;x=a b",
        b"5;x\x00",
        b"1" * 16,
    ],
)
def test_a_malformed_chunk_size_line_is_refused(line: bytes) -> None:
    refused(CHUNKED_HEAD + line + b"\r\nhello\r\n0\r\n\r\n", "a malformed chunk size line")


@pytest.mark.parametrize("line", [b"5;x=y", b"5; x = y", b'5;x="a \\" ;b"', b"5;a;b=c\t", b"005", b"5;x=y;z"])
def test_chunk_extensions_are_read_past(line: bytes) -> None:
    parsed = parse(CHUNKED_HEAD + line + b"\r\nhello\r\n0;last=1\r\n\r\n")
    assert (parsed.body, parsed.reusable) == (b"hello", True)


def test_a_chunk_size_line_ending_in_a_bare_lf_is_refused() -> None:
    refused(CHUNKED_HEAD + b"5\nhello\r\n0\r\n\r\n", "a malformed chunk size line")
    refused(CHUNKED_HEAD + b"5\r\nhello\r\n0\n\r\n", "a malformed chunk size line")


@pytest.mark.parametrize("after", [b"XX", b"\n", b"\r", b"\rX", b" \r\n", b"\n\r"])
def test_chunk_data_not_followed_by_crlf_is_refused(after: bytes) -> None:
    raw = CHUNKED_HEAD + b"5\r\nhello" + after + b"0\r\n\r\n"
    refused(raw, "a chunk's data not followed by CRLF")


def test_chunk_data_followed_by_the_wrong_byte_is_refused_without_waiting() -> None:
    with pytest.raises(BadResponse, match="not followed by CRLF"):
        parse_response(CHUNKED_HEAD + b"5\r\nhelloX", False, LIMIT)
    assert parse_response(CHUNKED_HEAD + b"5\r\nhello\r", False, LIMIT) is None  # the LF may still come


def test_a_chunk_size_line_that_cannot_end_is_refused() -> None:
    with pytest.raises(BadResponse, match="chunk size line longer"):
        parse_response(CHUNKED_HEAD + b"5;x=" + b"a" * MAX_CHUNK_LINE, False, LIMIT)


@pytest.mark.parametrize(
    "trailer",
    [b"X-A: b\n\r\n", b"X-A: b\r\n\n", b"\n", b"X-A: b\r\n c\r\n\r\n", b"X-A : b\r\n\r\n", b"junk\r\n\r\n"],
)
def test_a_malformed_trailer_section_is_refused(trailer: bytes) -> None:
    refused(CHUNKED_HEAD + chunked(b"hello") + b"0\r\n" + trailer, "a malformed trailer section")


def test_bytes_after_a_chunked_body_make_the_connection_not_reusable() -> None:
    parsed = parse(CHUNKED_HEAD + chunked(b"hello") + b"0\r\n\r\n" + HIDDEN)
    assert (parsed.body, parsed.reusable) == (b"hello", False)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (b"X-A: b\r\n c", "obsolete line folding"),
        (b"X-A: b\r\n\tc", "obsolete line folding"),
        (b" X-A: b", "obsolete line folding"),  # whitespace before the first field (RFC 9112 2.2)
        (b"X-A: b\r\n Content-Length: 0", "obsolete line folding"),
        (b"Content-Length : 0", "whitespace between a field name and its colon"),
        (b"Content-Length\t: 0", "whitespace between a field name and its colon"),
        (b"X-A: b\rc", "a bare CR"),
        (b"X-A: b\r\rX-B: c", "a bare CR"),
        (b"X-A: b\x00c", "a control character"),
        (b"X-A: b\x7f", "a control character"),
        (b"X-A: b\x0bc", "a control character"),
        (b"X-A: b\x1b[31m", "a control character"),
        (b"X\x80A: b", "a malformed field line"),
        (b"X(A): b", "a malformed field line"),
        (b"@: b", "a malformed field line"),
    ],
)
def test_a_malformed_field_line_is_refused(fields: bytes, match: str) -> None:
    refused(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + fields + b"\r\n\r\n", match)


def test_field_values_may_hold_tabs_spaces_and_obs_text() -> None:
    parsed = parse(b"HTTP/1.1 200 OK\r\nX-A: \ta \t b\xe9\xff \t\r\nX-B:\r\nContent-Length: 0\r\n\r\n")
    assert parsed.headers == {"x-a": "a \t b\xe9\xff", "x-b": "", "content-length": "0"}


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (b"HTTP/1.1\t200 OK", "not an HTTP status line"),
        (b"HTTP/1.1  200 OK", "not an HTTP status line"),
        (b"HTTP/1.1 042 Weird", "not an HTTP status line"),
        (b"HTTP/1.1 0 Zero", "not an HTTP status line"),
        (b"HTTP/1.1 +200 OK", "not an HTTP status line"),
        (b"HTTP/1.1 200OK", "not an HTTP status line"),
        (b"HTTP/11 200 OK", "not an HTTP status line"),
        (b"HTTP/1.1 200 O\x01K", "a control character in the status line"),
        (b"HTTP/1.1 200 OK\r", "a control character in the status line"),
    ],
)
def test_a_malformed_status_line_is_refused(line: bytes, match: str) -> None:
    refused(line + b"\r\nContent-Length: 0\r\n\r\n", match)


def test_a_final_status_line_after_an_interim_one_that_is_malformed_is_refused() -> None:
    # Bytes that are not HTTP after a 100 leave the 100 as the answer; a broken status line does not.
    raw = head("HTTP/1.1 100 Continue") + head("HTTP/1.1 2OO OK", "Content-Length: 0")
    with pytest.raises(BadResponse, match="not an HTTP status line"):
        parse_response(raw, False, LIMIT)


def test_framing_fields_of_an_interim_head_are_checked_too() -> None:
    raw = head("HTTP/1.1 100 Continue", "Content-Length: x") + head("HTTP/1.1 200 OK", "Content-Length: 0")
    with pytest.raises(BadResponse, match="not one number"):
        parse_response(raw, False, LIMIT)


def test_a_head_ending_in_mixed_line_ends_is_read() -> None:
    # LF after the last field, CRLF for the blank line (RFC 9112 2.2 allows a bare LF per line).
    parsed = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nok")
    assert (parsed.status, parsed.body, parsed.reusable) == (200, b"ok", True)


def test_a_line_at_the_limit_is_read_and_one_byte_longer_is_refused() -> None:
    value = b"a" * (MAX_LINE_BYTES - len(b"X-Long: \r\n"))
    at_limit = b"HTTP/1.1 200 OK\r\nX-Long: " + value + b"\r\nContent-Length: 0\r\n\r\n"
    assert parse(at_limit).headers["x-long"] == value.decode()
    refused(at_limit.replace(value, value + b"a"), "head line longer than")


def test_a_line_that_cannot_end_within_the_limit_is_refused_before_its_end() -> None:
    with pytest.raises(BadResponse, match="head line longer than"):
        parse_response(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * MAX_LINE_BYTES, False, LIMIT)
    assert parse_response(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 100, False, LIMIT) is None


# -- parse_response: what is not a response ------------------------------------------------------


@pytest.mark.parametrize("status", [32768, 99999, 10**12])
def test_a_status_out_of_range(status: int) -> None:
    with pytest.raises(BadResponse):
        parse_response(head(f"HTTP/1.1 {status} Big", "Content-Length: 0"), False, LIMIT)


def test_a_status_with_thousands_of_digits() -> None:
    with pytest.raises(BadResponse):
        parse_response(head("HTTP/1.1 " + "1" * 5000 + " Long"), False, LIMIT)


@pytest.mark.parametrize("raw", [b"SSH-2", b"SSH-2.0-OpenSSH_9.6\r\n", b"<html>", b"\x16\x03\x01\x02\x00"])
def test_bytes_that_are_not_http_are_refused_without_waiting(raw: bytes) -> None:
    with pytest.raises(BadResponse):
        parse_response(raw, False, LIMIT)


@pytest.mark.parametrize("raw", [b"H", b"HTTP", b"HTTP/", b"HTTP/1.1 200 OK\r\n"])
def test_the_start_of_a_status_line_is_waited_on(raw: bytes) -> None:
    assert parse_response(raw, False, LIMIT) is None


def test_a_status_line_that_is_not_one() -> None:
    with pytest.raises(BadResponse):
        parse_response(b"HTTP/one 200 OK\r\n\r\n", False, LIMIT)


def test_nothing_at_all_then_the_end() -> None:
    assert parse_response(b"", False, LIMIT) is None
    with pytest.raises(ServerDisconnected):
        parse_response(b"", True, LIMIT)


@pytest.mark.parametrize("raw", [b"HTTP/1.1 200 OK\r\nContent-Le", b"HTT", b"HTTP/1.1 200 OK\r\n"])
def test_a_head_cut_by_the_end(raw: bytes) -> None:
    with pytest.raises(ServerDisconnected):
        parse_response(raw, True, LIMIT)


def test_interim_statuses_are_read_past() -> None:
    raw = head("HTTP/1.1 100 Continue") + head("HTTP/1.1 102 Processing", "X-A: b")
    raw += head("HTTP/1.1 200 OK", "Content-Length: 2") + b"ok"
    parsed = parse(raw)
    assert (parsed.status, parsed.headers, parsed.body) == (200, {"content-length": "2"}, b"ok")
    assert parsed.reusable


def test_only_an_interim_status_then_the_end() -> None:
    raw = head("HTTP/1.1 102 Processing")
    assert parse_response(raw, False, LIMIT) is None
    with pytest.raises(InterimStatusOnly) as info:
        parse_response(raw, True, LIMIT)
    assert info.value.status == 102


def test_an_interim_status_then_something_that_is_not_http() -> None:
    with pytest.raises(InterimStatusOnly) as info:
        parse_response(head("HTTP/1.1 100 Continue") + b"ok", False, LIMIT)
    assert info.value.status == 100


def test_a_head_longer_than_the_limit_is_refused_before_its_end() -> None:
    raw = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD_BYTES
    with pytest.raises(BadResponse):
        parse_response(raw, False, LIMIT)


def head_of(size: int) -> bytes:
    """A 200 head of exactly `size` bytes, padded by header lines of 4 KiB at most."""
    raw = head("HTTP/1.1 200 OK", "Content-Length: 0")
    while len(raw) < size:
        fill = min(4096, size - len(raw)) - len(b"X-F: \r\n")
        assert fill >= 0
        raw = raw[:-2] + b"X-F: " + b"a" * fill + b"\r\n\r\n"
    assert len(raw) == size
    return raw


def test_a_head_at_the_limit_is_read_and_one_byte_more_is_refused() -> None:
    assert parse(head_of(MAX_HEAD_BYTES)).status == 200
    with pytest.raises(BadResponse, match="head longer than"):
        parse_response(head_of(MAX_HEAD_BYTES + 1), False, LIMIT)


def test_a_head_longer_than_the_limit_is_refused_when_it_arrives_whole() -> None:
    raw = head("HTTP/1.1 200 OK", "Content-Length: 0", "X-Big: " + "a" * MAX_HEAD_BYTES)
    with pytest.raises(BadResponse):
        parse_response(raw, False, LIMIT)


# -- the request head ----------------------------------------------------------------------------


def request_lines(url: str, headers: dict[str, str] | None = None, user_agent: str = "agent/1") -> list[str]:
    """The request head's lines (without their CRLFs)."""
    text = _target(url, headers or {}, user_agent).head.decode()
    assert text.endswith("\r\n") and not text.endswith("\r\n\r\n")  # Content-Length and the end are added
    return text.split("\r\n")[:-1]


def request_headers(
    url: str, headers: dict[str, str] | None = None, user_agent: str = "agent/1"
) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in request_lines(url, headers, user_agent)[1:]:
        name, _, value = line.partition(": ")
        assert name.lower() not in fields, f"{name} twice"
        fields[name.lower()] = value
    return fields


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://example.com/hook", "example.com"),
        ("http://example.com:80/hook", "example.com"),
        ("https://example.com:443/hook", "example.com"),
        ("http://example.com:8080/hook", "example.com:8080"),
        ("https://example.com:80/hook", "example.com:80"),
        ("http://EXAMPLE.com/hook", "example.com"),
        ("http://[::1]/hook", "[::1]"),
        ("http://[2001:db8::1]:8443/hook", "[2001:db8::1]:8443"),
        ("http://127.0.0.1:9/hook", "127.0.0.1:9"),
    ],
)
def test_the_host_header(url: str, host: str) -> None:
    assert request_headers(url)["host"] == host


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://Example.COM/a", ("http", "example.com", 80)),
        ("HTTPS://example.com/a", ("https", "example.com", 443)),
        ("http://[::1]:8080/a", ("http", "::1", 8080)),
    ],
)
def test_the_pool_key(url: str, key: tuple[str, str, int]) -> None:
    assert _target(url, {}, "agent/1").key == key


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://example.com/a/b?x=1&y=%20", "/a/b?x=1&y=%20"),
        ("http://example.com", "/"),
        ("http://example.com?x=1", "/?x=1"),
        ("http://example.com/a#fragment", "/a"),
    ],
)
def test_the_request_line(url: str, target: str) -> None:
    assert request_lines(url)[0] == f"POST {target} HTTP/1.1"


def test_the_default_headers() -> None:
    assert request_headers("http://example.com/") == {
        "host": "example.com",
        "user-agent": "agent/1",
        "accept": "*/*",
        "accept-encoding": "identity",
    }


def test_url_credentials_become_basic_authorization() -> None:
    fields = request_headers("http://user:p%40ss@example.com/hook")
    assert fields["authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert fields["host"] == "example.com"
    assert request_lines("http://user:p%40ss@example.com/hook")[0] == "POST /hook HTTP/1.1"


def test_configured_headers_are_sent_and_override_the_defaults() -> None:
    lines = request_lines(
        "http://example.com/", {"user-agent": "partner/2", "X-Api-Key": "k", "Accept": "application/json"}
    )
    assert "X-Api-Key: k" in lines
    fields = request_headers(
        "http://example.com/", {"user-agent": "partner/2", "X-Api-Key": "k", "Accept": "application/json"}
    )
    assert fields["user-agent"] == "partner/2"
    assert fields["accept"] == "application/json"


def test_framing_headers_from_the_configuration_are_ignored() -> None:
    configured = {
        "Host": "evil.example",
        "Content-Length": "5",
        "transfer-encoding": "chunked",
        "CONNECTION": "close",
        "X-Kept": "yes",
    }
    fields = request_headers("http://example.com:8080/", configured)
    assert fields["host"] == "example.com:8080"
    assert fields["x-kept"] == "yes"
    assert not {"content-length", "transfer-encoding", "connection"} & fields.keys()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-A": "a\r\nX-Injected: 1"},
        {"X-A": "a\nb"},
        {"X-A": "a\rb"},
        {"X-A\r\nX-B": "1"},
        {"X-A:B": "1"},
    ],
)
def test_a_header_that_would_break_the_head(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        _target("http://example.com/", headers, "agent/1")


@pytest.mark.parametrize(
    ("url", "request_line"),
    [
        ("http://hooks.example.com/hook?x=1", b"POST http://hooks.example.com/hook?x=1 HTTP/1.1\r\n"),
        ("http://[fd00::5]:8080/", b"POST http://[fd00::5]:8080/ HTTP/1.1\r\n"),
        # Through a tunnel the request is the destination's own: origin form.
        ("https://hooks.example.com/hook", b"POST /hook HTTP/1.1\r\n"),
    ],
)
def test_the_request_line_for_a_proxy(url: str, request_line: bytes) -> None:
    assert _target(url, {}, "agent/1", absolute=True).head.startswith(request_line)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "ws://example.com/", "example.com/hook", "http:///hook", ""]
)
def test_a_url_that_is_not_http(url: str) -> None:
    with pytest.raises(ValueError):
        _target(url, {}, "agent/1")


# -- the client ----------------------------------------------------------------------------------


def make_client(**options: Any) -> Client:
    return Client(ssl_context=ssl.create_default_context(), targets=PRIVATE_ALLOWED, **options)


async def post(
    client: Client, server: FaultServer, *, timeout_s: float = 2.0, path: str = "/hook"
) -> Response:
    return await client.post(server.url(path), PAYLOAD, HEADERS, timeout_s=timeout_s, read_limit=LIMIT)


class Tracked:
    """A keep-alive handler that answers 200 to every request and counts those in progress.

    Each answer waits for `release` (set from the start unless `gated`), then `delay_s`.
    """

    def __init__(self, *, gated: bool = False, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.active = 0
        self.most = 0
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        if not gated:
            self.release.set()

    async def __call__(self, exchange: Exchange) -> None:
        while True:
            await exchange.read_request()
            self.active += 1
            self.most = max(self.most, self.active)
            self.arrived.set()
            await self.release.wait()
            await asyncio.sleep(self.delay_s)
            self.active -= 1
            await exchange.send(OK_KEEP_ALIVE)


def test_the_request_on_the_wire() -> None:
    async def scenario() -> tuple[Response, list[bytes], int]:
        async with FaultServer(keep_alive) as server:
            client = make_client(user_agent="agent/1")
            try:
                response = await post(client, server, path="/hook?x=1")
            finally:
                await client.close()
            return response, server.received, server.port

    response, received, port = asyncio.run(scenario())
    assert response == Response(200, b'{"success":true}')
    request_head, _, body = received[0].partition(b"\r\n\r\n")
    lines = request_head.decode().split("\r\n")
    assert lines[0] == "POST /hook?x=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{port}" in lines
    assert "User-Agent: agent/1" in lines
    assert "Content-Type: application/json" in lines
    assert f"Content-Length: {len(PAYLOAD)}" in lines
    assert body == PAYLOAD


def test_heads_that_differ_on_every_request_are_sent_as_given_and_not_kept_without_bound() -> None:
    # A signed destination's headers (webhook-id, signature) are new on every request.
    n = http1.TARGETS_KEPT + 10

    async def scenario() -> tuple[list[bytes], int]:
        async with FaultServer(keep_alive) as server:
            client = make_client()
            try:
                for i in range(n):
                    headers = {**HEADERS, "webhook-id": f"msg_{i}"}
                    await client.post(server.url(), PAYLOAD, headers, timeout_s=2.0, read_limit=LIMIT)
                return server.received, len(client._targets)
            finally:
                await client.close()

    received, kept = asyncio.run(scenario())
    sent = [request.count(f"\r\nwebhook-id: msg_{i}\r\n".encode()) for i, request in enumerate(received)]
    assert sent == [1] * n
    assert kept <= http1.TARGETS_KEPT


def test_connections_are_reused_for_sequential_posts() -> None:
    async def scenario() -> tuple[list[int], int, int]:
        async with FaultServer(keep_alive) as server:
            client = make_client()
            try:
                statuses = [(await post(client, server)).status for _ in range(4)]
            finally:
                await client.close()
            return statuses, server.requests, server.connections

    statuses, requests, connections = asyncio.run(scenario())
    assert statuses == [200, 200, 200, 200]
    assert requests == 4
    assert connections == 1


def test_a_connection_the_response_closes_is_not_reused() -> None:
    async def says_close_but_stays_open(exchange: Exchange) -> None:
        while True:
            await exchange.read_request()
            await exchange.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    async def scenario() -> tuple[list[int], int]:
        async with FaultServer(says_close_but_stays_open) as server:
            client = make_client()
            try:
                statuses = [(await post(client, server)).status for _ in range(3)]
            finally:
                await client.close()
            return statuses, server.connections

    statuses, connections = asyncio.run(scenario())
    assert statuses == [200, 200, 200]
    assert connections == 3


def test_a_connection_idle_past_keepalive_is_not_reused() -> None:
    async def scenario() -> tuple[list[int], int]:
        async with FaultServer(keep_alive) as server:
            client = make_client(keepalive_s=0.05)
            try:
                first = await post(client, server)
                await asyncio.sleep(0.2)
                second = await post(client, server)
            finally:
                await client.close()
            return [first.status, second.status], server.connections

    statuses, connections = asyncio.run(scenario())
    assert statuses == [200, 200]
    assert connections == 2


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    closed = asyncio.Event()

    async def answer_then_close(exchange: Exchange) -> None:
        await exchange.read_request()
        await exchange.send(OK_KEEP_ALIVE)  # no "Connection: close": the client pools it
        await exchange.close()
        closed.set()

    async def scenario() -> tuple[list[int], int]:
        async with FaultServer(answer_then_close) as server:
            client = make_client()
            try:
                first = await post(client, server)
                await asyncio.wait_for(closed.wait(), 5)
                await asyncio.sleep(0.05)  # the FIN reaches the client's loop
                second = await post(client, server)
            finally:
                await client.close()
            return [first.status, second.status], server.connections

    statuses, connections = asyncio.run(scenario())
    assert statuses == [200, 200]
    assert connections == 2


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_a_connection_the_server_closed_just_after_answering_is_not_reused(
    run: Callable[[Coroutine[Any, Any, list[int]]], list[int]],
) -> None:
    # The server's FIN is in the kernel, but the client's loop has not read it yet: the pooled
    # connection looks open, and a request written on it would meet the server's reset.
    listener = socket.create_server(("127.0.0.1", 0))
    answered_and_closed = threading.Event()
    connections = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            connections.append(conn)
            request = b""
            while b"\r\n\r\n" not in request or not request.endswith(PAYLOAD):
                chunk = conn.recv(65536)
                if not chunk:
                    return  # the client gave up: the assertions below say so
                request += chunk
            conn.sendall(OK_KEEP_ALIVE)  # no "Connection: close": the client pools it
            conn.close()
            answered_and_closed.set()

    async def scenario() -> list[int]:
        client = make_client()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        try:
            first = await client.post(url, PAYLOAD, HEADERS, timeout_s=2.0, read_limit=LIMIT)
            # Blocking the loop, so that it reads nothing meanwhile.
            assert answered_and_closed.wait(5)
            time.sleep(0.05)
            second = await client.post(url, PAYLOAD, HEADERS, timeout_s=2.0, read_limit=LIMIT)
        finally:
            await client.close()
        return [first.status, second.status]

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        assert run(scenario()) == [200, 200]
    finally:
        listener.close()
    server.join(5)
    assert len(connections) == 2


def test_limit_per_host_keeps_requests_to_one_host_sequential() -> None:
    async def scenario(limit: int) -> tuple[list[int], int]:
        tracked = Tracked(delay_s=0.1)
        async with FaultServer(tracked) as server:
            client = make_client(limit_per_host=limit)
            try:
                responses = await asyncio.gather(post(client, server), post(client, server))
            finally:
                await client.close()
            return [r.status for r in responses], tracked.most

    assert asyncio.run(scenario(1)) == ([200, 200], 1)
    assert asyncio.run(scenario(2)) == ([200, 200], 2)  # the server does see two at once without the limit


def test_a_post_waiting_for_a_slot_past_its_timeout() -> None:
    async def scenario() -> None:
        tracked = Tracked(gated=True)
        async with FaultServer(tracked) as server:
            client = make_client(limit_per_host=1)
            try:
                first = asyncio.create_task(post(client, server, timeout_s=10))
                await asyncio.wait_for(tracked.arrived.wait(), 5)  # the first holds the slot
                started = time.perf_counter()
                with pytest.raises(TransportError) as info:
                    await post(client, server, timeout_s=0.1)
                assert info.value.code == "ECONNECTTIMEOUT"
                assert isinstance(info.value.__cause__, ConnectTimeout)
                assert time.perf_counter() - started < 5
                assert server.requests == 1  # the second never got to send
                tracked.release.set()
                assert (await first).status == 200
                # The slot the timed-out post waited for is neither lost nor doubled.
                assert (await post(client, server)).status == 200
                tracked.delay_s = 0.05
                later = await asyncio.gather(post(client, server), post(client, server))
                assert [r.status for r in later] == [200, 200]
                assert tracked.most == 1
                assert server.requests == 4
            finally:
                await client.close()

    asyncio.run(scenario())


def test_a_slot_handed_over_as_its_waiter_is_cancelled_is_passed_on() -> None:
    async def scenario() -> None:
        slots = _Slots(1)
        loop = asyncio.get_running_loop()
        await slots.take(loop.time() + 5)
        waiting = asyncio.create_task(slots.take(loop.time() + 5))
        await asyncio.sleep(0)  # it waits
        assert not waiting.done()
        slots.give()  # hands the slot to it...
        waiting.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.wait_for(slots.take(loop.time() + 5), 1)  # the slot was passed on, not lost
        with pytest.raises(TimeoutError):
            await slots.take(loop.time() + 0.05)  # and there is only one

    asyncio.run(scenario())


def test_a_server_that_never_answers_times_out() -> None:
    async def scenario() -> float:
        async with FaultServer(never_answer) as server:
            client = make_client()
            try:
                started = time.perf_counter()
                with pytest.raises(TransportError) as info:
                    await post(client, server, timeout_s=0.2)
                assert info.value.code == "ETIMEDOUT"
                assert str(info.value) == "TimeoutError: no complete response within the request timeout"
                return time.perf_counter() - started
            finally:
                await client.close()

    assert asyncio.run(scenario()) < 5


def test_a_closed_client_refuses_to_post() -> None:
    async def scenario() -> None:
        client = make_client()
        await client.close()
        with pytest.raises(TransportError, match="closed") as info:
            await client.post("http://127.0.0.1:9/hook", PAYLOAD, HEADERS, timeout_s=1.0, read_limit=LIMIT)
        assert isinstance(info.value.__cause__, RuntimeError)
        assert info.value.code == UNCLASSIFIED_CODE  # a bug of the caller's, not a fault of the destination

    asyncio.run(scenario())


def test_close_closes_the_idle_connections() -> None:
    ended = asyncio.Event()

    async def serve_until_hung_up(exchange: Exchange) -> None:
        try:
            await keep_alive(exchange)
        except asyncio.IncompleteReadError:
            ended.set()
            raise

    async def scenario() -> None:
        async with FaultServer(serve_until_hung_up) as server:
            client = make_client()
            assert (await post(client, server)).status == 200
            assert not ended.is_set()
            await client.close()
            await asyncio.wait_for(ended.wait(), 5)
            with pytest.raises(TransportError, match="closed"):
                await post(client, server)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "url",
    [
        "http://something.invalid/hook",
        "https://a.b.INVALID:8443/hook",
        "http://x.invalid./",
        "http://invalid/",
    ],
)
def test_invalid_hosts_fail_without_a_dns_query(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[object] = []

    def no_dns(*args: object, **kwargs: object) -> Any:
        asked.append(args)
        raise AssertionError(f"a DNS query for {args[0]!r}")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)

    async def scenario() -> None:
        client = make_client()
        try:
            with pytest.raises(TransportError) as info:
                await client.post(url, PAYLOAD, HEADERS, timeout_s=2.0, read_limit=LIMIT)
            assert info.value.code == "ENOTFOUND"
            assert isinstance(info.value.__cause__, socket.gaierror)
            assert info.value.__cause__.errno == socket.EAI_NONAME
        finally:
            await client.close()

    asyncio.run(scenario())
    assert asked == []


def test_a_url_that_is_not_http_is_refused_by_post() -> None:
    async def scenario() -> None:
        client = make_client()
        try:
            with pytest.raises(TransportError) as info:
                await client.post("ftp://127.0.0.1/hook", PAYLOAD, HEADERS, timeout_s=1.0, read_limit=LIMIT)
            assert isinstance(info.value.__cause__, ValueError)
            assert info.value.code == UNCLASSIFIED_CODE
        finally:
            await client.close()

    asyncio.run(scenario())


def test_the_client_on_uvloop() -> None:
    async def scenario() -> tuple[list[int], int, str]:
        async with FaultServer(keep_alive) as server:
            client = make_client()
            try:
                statuses = [(await post(client, server)).status for _ in range(2)]
            finally:
                await client.close()
            return statuses, server.connections, type(asyncio.get_running_loop()).__module__

    statuses, connections, loop_module = uvloop.run(scenario())
    assert loop_module.startswith("uvloop")
    assert statuses == [200, 200]
    assert connections == 1


# -- the client: a response the parser refuses never leaks into the next request ------------------

#: Six framings the first version read by a guess; each test hides a whole second response after one.
SMUGGLERS = {
    "xchunked": head("HTTP/1.1 200 OK", "Transfer-Encoding: xchunked", "Content-Length: 5") + b"hello",
    "te and cl": head("HTTP/1.1 200 OK", "Content-Length: 0", "Transfer-Encoding: chunked") + b"0\r\n\r\n",
    "chunk terminator": CHUNKED_HEAD + b"5\r\nhelloXX0\r\n\r\n",
    "obs-fold": head("HTTP/1.1 200 OK", "X-A: b", " Content-Length: 0"),
    "space before colon": head("HTTP/1.1 200 OK", "Content-Length : 0"),
    "chunked in http/1.0": head("HTTP/1.0 200 OK", "Transfer-Encoding: chunked") + b"0\r\n\r\n",
}


@pytest.mark.parametrize("framing", SMUGGLERS.values(), ids=SMUGGLERS.keys())
def test_a_refused_response_closes_the_connection_and_hides_nothing(framing: bytes) -> None:
    raw = framing + HIDDEN
    connections = 0

    async def first_smuggles(exchange: Exchange) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await exchange.read_request()
            await exchange.send(raw)
        await keep_alive(exchange)

    async def scenario() -> tuple[TransportError, list[Response], int]:
        async with FaultServer(first_smuggles) as server:
            client = make_client()
            try:
                with pytest.raises(TransportError) as info:
                    await post(client, server)
                later = [await post(client, server) for _ in range(2)]
            finally:
                await client.close()
            return info.value, later, server.connections

    error, later, connections = asyncio.run(scenario())
    assert error.code == "EBADRESPONSE"
    assert isinstance(error.__cause__, BadResponse)
    assert later == [Response(200, b'{"success":true}')] * 2  # never the hidden response
    assert connections == 2


def test_bytes_after_a_complete_response_close_the_connection() -> None:
    connections = 0

    async def first_says_more(exchange: Exchange) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await exchange.read_request()
            await exchange.send(OK_KEEP_ALIVE + HIDDEN)  # one write: most often one read
        await keep_alive(exchange)

    async def scenario() -> tuple[list[Response], int]:
        async with FaultServer(first_says_more) as server:
            client = make_client()
            try:
                responses = [await post(client, server) for _ in range(2)]
            finally:
                await client.close()
            return responses, server.connections

    responses, connections = asyncio.run(scenario())
    assert responses == [Response(200, b"ok"), Response(200, b'{"success":true}')]
    assert connections == 2


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_an_answer_before_the_whole_request_was_sent_is_recorded_and_the_connection_closed(
    run: Callable[[Coroutine[Any, Any, tuple[list[Response], int]]], tuple[list[Response], int]],
) -> None:
    async def answer_unread(exchange: Exchange) -> None:
        # Answers at once (a 413, say) and reads nothing, so the client is still writing.
        await exchange.send(b"HTTP/1.1 413 Too Large\r\nContent-Length: 8\r\n\r\ntoo long")
        await asyncio.Event().wait()

    async def scenario() -> tuple[list[Response], int]:
        async with FaultServer(answer_unread) as server:
            client = make_client()
            try:
                big = b"x" * (32 * 1024 * 1024)  # more than the kernel's buffers take at once
                responses = [
                    await client.post(server.url(), big, HEADERS, timeout_s=5.0, read_limit=LIMIT)
                    for _ in range(2)
                ]
            finally:
                await client.close()
            return responses, server.connections

    responses, connections = run(scenario())
    assert responses == [Response(413, b"too long")] * 2
    assert connections == 2  # the first connection was not reused: its server never read the rest


# -- what the review of the first version found ---------------------------------------------------


def test_an_international_name_and_path_go_out_as_on_the_wire() -> None:
    lines = request_lines("https://Bücher.example./ä?q=ü")
    assert lines[0] == "POST /%C3%A4?q=%C3%BC HTTP/1.1"
    assert request_headers("https://Bücher.example./ä")["host"] == "xn--bcher-kva.example"
    assert _target("https://Bücher.example./", {}, "agent/1").key == ("https", "xn--bcher-kva.example", 443)


def test_a_second_retry_after_is_ignored_not_joined() -> None:
    raw = head("HTTP/1.1 429 Slow", "Retry-After: 120", "Retry-After: 30", "Content-Length: 0")
    assert parse(raw).headers["retry-after"] == "120"


def test_a_chunk_size_line_without_end_is_refused() -> None:
    with pytest.raises(BadResponse, match="chunk size line"):
        parse_response(CHUNKED_HEAD + b"1;" + b"a" * 2000, False, LIMIT)


# -- this client's exceptions at the seam ------------------------------------------------------


def from_none(error: Exception) -> Exception:
    """`error` raised `from None` while handling a TimeoutError, as `Client.post` raises ConnectTimeout."""
    error.__context__ = TimeoutError()
    error.__suppress_context__ = True
    return error


OWN_EXCEPTIONS = [
    (
        "closed without answering",
        ServerDisconnected("Server disconnected without sending a response"),
        "ESERVERDISCONNECT",
    ),
    (
        "closed inside the head",
        ServerDisconnected("Server disconnected inside the response head"),
        "ESERVERDISCONNECT",
    ),
    ("connect timeout", ConnectTimeout("connecting to example.com:443 timed out"), "ECONNECTTIMEOUT"),
    ("no free slot", from_none(ConnectTimeout("no free connection to example.com")), "ECONNECTTIMEOUT"),
    ("not HTTP", BadResponse("not an HTTP response: b'SSH-2.0'"), "EBADRESPONSE"),
    ("body cut short", ConnectionResetError("the connection ended inside the response body"), "ECONNRESET"),
]


@pytest.mark.parametrize(
    ("error", "code"), [row[1:] for row in OWN_EXCEPTIONS], ids=[row[0] for row in OWN_EXCEPTIONS]
)
def test_own_exceptions_have_their_codes(error: Exception, code: str) -> None:
    failure = transport_error(error, TABLE)
    assert failure.code == code and failure.unclassified is None
    assert classify_transport(code).error_class in (
        ErrorClass.NETWORK,
        ErrorClass.TIMEOUT,
        ErrorClass.NONSTANDARD,
    )


def test_a_connect_timeout_has_its_own_code() -> None:
    assert classify_transport(transport_error(ConnectTimeout("timed out"), TABLE).code) == Classification(
        ErrorClass.TIMEOUT, "ECONNECTTIMEOUT", True
    )


def test_every_exception_class_of_the_module_is_in_its_table() -> None:
    own = {
        cls
        for _, cls in inspect.getmembers(http1, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == http1.__name__
    }
    # InterimStatusOnly and ProxyAnswered never cross the seam: `Client.post` answers with their status.
    assert own - {InterimStatusOnly, ProxyAnswered} == set(TABLE) - {TargetRefused}
    assert set(TABLE.values()) <= set(TRANSPORT_CODES)


def test_an_interim_status_alone_is_a_response_at_the_seam() -> None:
    async def only_continue(exchange: Exchange) -> None:
        await exchange.read_request()
        await exchange.send(b"HTTP/1.1 102 Processing\r\n\r\n")
        await exchange.close()

    async def scenario() -> Response:
        async with FaultServer(only_continue) as server:
            client = make_client()
            try:
                return await post(client, server)
            finally:
                await client.close()

    assert asyncio.run(scenario()) == Response(102, b"")


def test_idle_connections_of_a_host_never_asked_again_are_closed() -> None:
    async def scenario() -> tuple[bool, bool]:
        async with FaultServer(keep_alive) as first, FaultServer(keep_alive) as second:
            client = make_client(keepalive_s=0.05)
            try:
                await post(client, first)
                (pooled,) = client._idle[("http", "127.0.0.1", first.port)]
                await asyncio.sleep(0.1)
                await post(client, second)  # a later request sweeps every host's pool
                return pooled.closed, ("http", "127.0.0.1", first.port) in client._idle
            finally:
                await client.close()

    assert asyncio.run(scenario()) == (True, False)


def test_bytes_on_an_idle_connection_close_it() -> None:
    async def chatty(exchange: Exchange) -> None:
        await exchange.read_request()
        await exchange.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await asyncio.sleep(0.05)
        await exchange.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")
        await asyncio.Event().wait()

    async def scenario() -> bool:
        async with FaultServer(chatty) as server:
            client = make_client()
            try:
                await post(client, server)
                (pooled,) = client._idle[("http", "127.0.0.1", server.port)]
                await asyncio.sleep(0.2)
                return pooled.closed
            finally:
                await client.close()

    assert asyncio.run(scenario())
