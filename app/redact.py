"""Response bodies with the customer's data taken out, for pages seen across tenants (pure).

A partner sees its own error answers, but those echo what customers sent:
e-mail addresses, ids, names, numbers, the offending value quoted in a
message. Redaction keeps what the partner wrote and removes what the
customer sent:

* e-mail addresses, UUIDs, long tokens with digits and numbers become
  `<email>`, `<id>` and `<n>`, wherever they are;
* a JSON string value of one word (`"email": "ann"`) becomes `"…"`: a
  single word is data far more often than prose;
* inside prose (a value with spaces), anything in single quotes, backticks
  or escaped double quotes becomes `'…'`: messages quote the value they reject.

JSON keys and the message's own words stay, so the answer is still recognisable.
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_TOKEN = re.compile(r"\b(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{16,}\b")
_NUMBER = re.compile(r"(?<![\w.<])-?\d+(\.\d+)?(?![\w.>])")
# Every JSON string, keys included (a key is followed by a colon): matching keys
# too keeps the scan aligned on string boundaries.
_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:)?')
_QUOTED = re.compile(r"'[^']*'|`[^`]*`|\\\"(?:[^\\]|\\[^\"])*\\\"")


def body(text: str | None) -> str | None:
    """`text` with customer data replaced by placeholders (see the module docstring)."""
    if text is None:
        return None
    text = _EMAIL.sub("<email>", text)
    text = _UUID.sub("<id>", text)
    text = _TOKEN.sub("<id>", text)
    text = _JSON_STRING.sub(_value, text)
    return _NUMBER.sub("<n>", text)


def _value(match: re.Match[str]) -> str:
    inner, key = match.group(1), match.group(2)
    if key:
        return match.group(0)
    if " " not in inner.strip():
        return '"…"' if inner and not inner.startswith("<") else match.group(0)
    return '"' + _QUOTED.sub("'…'", inner) + '"'
