"""Bodies that differ only in numbers, ids and one-token values fall into one template."""

from __future__ import annotations

from pathlib import Path

import pytest

from queries import Scope, connect, error_samples

from .conftest import D1, D2, at, job, publish

RATE_LIMIT = '{"error":{"message":"Rate limit 10/s exceeded, retry in %ds","request_id":"%s"}}'


def templates_of(tmp_path: Path, bodies: list[str]) -> dict[str, int]:
    """Publish one failed 429 request per body; return requests per template."""
    rows = []
    for i, body in enumerate(bodies):
        failure = {
            "started_at": at(D1, f"12:{i:02d}"),
            "status_code": 429,
            "error_class": "rate_limit",
            "outcome": "dropped",
            "retryable": True,
            "response_body": body,
        }
        rows += job(f"T{i}", "dst_acme_hook", at(D1, f"12:{i:02d}"), [failure])
    publish(rows, tmp_path)
    with connect(tmp_path) as log:
        samples = error_samples(log, Scope.all(), D1, D2)
    return dict(samples.select("template", "requests").iter_rows())


def test_numbers_and_request_ids_fall_together_and_messages_apart(tmp_path: Path) -> None:
    templates = templates_of(
        tmp_path,
        [
            RATE_LIMIT % (12, "req_8f3a9c21"),
            RATE_LIMIT % (7, "req_00aa11bb"),
            '{"error":{"message":"Daily quota exhausted","request_id":"req_12ab34cd"}}',
        ],
    )
    assert templates == {
        '{"error":{"message":"Rate limit <n>/s exceeded, retry in <n>s","request_id":"?"}}': 2,
        '{"error":{"message":"Daily quota exhausted","request_id":"?"}}': 1,
    }


@pytest.mark.parametrize(
    ("bodies", "template"),
    [
        pytest.param(
            [
                '{"id": "550e8400-e29b-41d4-a716-446655440000"}',
                '{"id": "123e4567-e89b-12d3-a456-426614174000"}',
            ],
            '{"id": "?"}',
            id="uuid-as-value",
        ),
        pytest.param(
            [
                "trace 550e8400-e29b-41d4-a716-446655440000 failed",
                "trace 0b7c4e1f-0000-4000-8000-00000000abcd failed",
            ],
            "trace <id> failed",
            id="uuid-in-text",
        ),
        pytest.param(
            [
                "request 0af7651916cd43dd8448eb211c80319c rejected",
                "request 01HV5ZK3J8Q9W0X1Y2Z3A4B5C6 rejected",
            ],
            "request <id> rejected",
            id="hex-and-ulid-in-text",
        ),
        pytest.param(
            ["see req_8f3a9c21 for details", "see req_00aa11bb for details"],
            "see req_<id> for details",
            id="prefixed-id-in-text",
        ),
        pytest.param(
            ['{"message":"Field \\"email\\" is invalid"}', '{"message":"Field \\"phone\\" is invalid"}'],
            '{"message":"Field \\"?\\" is invalid"}',
            id="quoted-inside-a-message",
        ),
        pytest.param(
            [
                '{"errors": ["bob@example.com", "x"], "at": "2026-03-10T12:00:01Z"}',
                '{"errors": ["alice@example.org", "y"], "at": "2026-03-11T08:30:00.250+02:00"}',
            ],
            '{"errors": ["?", "?"], "at": "?"}',
            id="array-values",
        ),
        pytest.param(
            [
                "<html>\n<h1>503   Service Unavailable</h1>\n</html>",
                "<html> <h1>503 Service Unavailable</h1> </html>",
            ],
            "<html> <h1><n> Service Unavailable</h1> </html>",
            id="whitespace-and-names-with-digits",
        ),
        pytest.param(
            ["Retry after 2026-03-10 12:00:01 please", "Retry after 2026-03-11 13:14:15 please"],
            "Retry after <ts> please",
            id="timestamp-in-text",
        ),
    ],
)
def test_variable_parts_fall_together(tmp_path: Path, bodies: list[str], template: str) -> None:
    assert templates_of(tmp_path, bodies) == {template: len(bodies)}


def test_keys_are_kept(tmp_path: Path) -> None:
    templates = templates_of(tmp_path, ['{"code":"invalid"}', '{"reason":"invalid"}'])
    assert templates == {'{"code":"?"}': 1, '{"reason":"?"}': 1}


def test_words_without_digits_are_not_ids(tmp_path: Path) -> None:
    templates = templates_of(tmp_path, ["ECONNRESET upstream", "Misconfiguration upstream"])
    assert set(templates) == {"ECONNRESET upstream", "Misconfiguration upstream"}
