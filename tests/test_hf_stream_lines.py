"""InferenceClientModel reads event-stream lines as SSE splits them, not as str.splitlines does."""

from __future__ import annotations

import json

from adapters.hf import _sse_lines


def test_unicode_line_breaks_inside_json_do_not_split_a_line():
    event = "data: " + json.dumps({"arguments": "a\u2028b\x85c\u2029d\x0be"}, ensure_ascii=False)
    body = event + "\n\n" + "data: [DONE]\r\n\r\n"
    for size in (1, 3, 7, len(body)):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        assert list(_sse_lines(iter(chunks))) == [event, "", "data: [DONE]", ""], size


def test_a_carriage_return_alone_ends_a_line():
    assert list(_sse_lines(iter(["data: 1\r", "data: 2\r"]))) == ["data: 1", "data: 2"]
