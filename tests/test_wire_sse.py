"""The server-sent-events codec every stream of the harness is written and read with (harness.wire.sse)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from harness.wire import sse

# what an OpenAI-compatible server sends: one event per chunk, a blank line after each, then [DONE]
WIRE = 'data: {"a":1}\n\ndata: {"b":[2]}\n\ndata: [DONE]\n\n'


def test_encode_writes_one_event_per_payload_then_done():
    assert "".join(sse.encode(['{"a":1}', '{"b":[2]}'])) == WIRE
    assert sse.encode(['{"a":1}'], done=False) == ['data: {"a":1}\n\n']


def test_decode_reads_payloads_and_the_terminator():
    assert sse.decode(WIRE) == ([{"a": 1}, {"b": [2]}], True)
    assert sse.decode('data: {"a":1}\n\n') == ([{"a": 1}], False)


def test_decode_follows_the_event_stream_format():
    # CRLF line ends, a comment (keep-alive), an event split over two data lines, a space-less field
    text = ': keep-alive\r\n\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata:{"b":2}\n\ndata: [DONE]\n\n'
    assert sse.decode(text) == ([{"a": 1}, {"b": 2}], True)


@given(st.lists(st.dictionaries(st.text(), st.integers() | st.text()), max_size=5), st.booleans())
def test_what_encode_writes_decode_reads(chunks, done):
    assert sse.decode("".join(sse.encode((json.dumps(c) for c in chunks), done))) == (chunks, done)
