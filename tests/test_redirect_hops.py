"""Every hop of a recorded redirect chain is scrubbed like the first.

A loopback stand-in (``harness.recording.fault_injector``, the one fake) answers the real openai SDK with a
redirect that sets a cookie and carries a token in its ``Location``; the client follows it, sends
the cookie back, and the next hop's reply echoes both values (in its body and in a header). None
of them has a credential's shape or is configured anywhere: they are secrets because a hop set them.
"""

from __future__ import annotations

import pytest

from harness.contract.secrets import values_set_by_response, variants
from harness.plugin.replay import provenance
from harness.recording.cassettes import finalize_recording, make_vcr
from harness.recording.fault_injector import FaultInjector, Reply
from harness.recording.scan import scan_text

COOKIE = "hop-cookie-value-7654321"
TOKEN = "hop/location+token=1234567"
PASSWORD = "hop-url-password-99"


def _completion(content: str) -> dict:
    return {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def test_values_set_by_one_hop_are_scrubbed_from_the_hops_after_it(no_configured_secrets, tmp_path):
    from urllib.parse import quote

    from adapters import OpenAIServerModel

    hop1 = Reply.raw(b"", 307, headers={"Location": f"/v1/chat/completions?access_token={quote(TOKEN, safe='')}&page=2",
                                        "Set-Cookie": f"session={COOKIE}; Path=/; HttpOnly"})
    echo = f"cookie {COOKIE} token {TOKEN}"
    hop2 = Reply.json(_completion(echo), headers={"X-Echo": f"{COOKIE} {TOKEN}"})
    path = tmp_path / "redirect.yaml"
    with FaultInjector([hop1, hop2]) as server:
        with make_vcr("record").use_cassette(str(path)):
            message = OpenAIServerModel("m", api_base=f"{server.url}/v1", api_key="sk-hop0000000000000000").generate(
                [{"role": "user", "content": "hi"}])
        assert len(server.requests) == 2  # the SDK followed the redirect
        assert COOKIE in server.requests[1].headers.get("Cookie", "")  # and sent the cookie back
    assert message.content == echo  # what the SDK read, before the cassette
    finalize_recording(path, provenance("openai", "adapters", "redirect", server="stand-in"))
    written = path.read_text(encoding="utf-8")
    leaked = [form for value in (COOKIE, TOKEN) for form in variants(value) if form in written]
    assert leaked == []
    assert scan_text(written, path.name) == []
    assert written.count("interactions") == 1 and written.count("- request:") == 2  # both hops kept
    assert "cookie REDACTED:set-by-a-response token REDACTED:set-by-a-response" in written


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Set-Cookie": [f"a={COOKIE}; Path=/", "b=short"]}, [COOKIE]),
    ({"Location": [f"https://h.example/cb#access_token={TOKEN}&state=x"]}, [TOKEN]),
    ({"Location": f"https://user:{PASSWORD}@h.example/next"}, [PASSWORD]),
    ({"X-Session-Token": ["server-issued-0000001"]}, ["server-issued-0000001"]),
    ({"Location": ["https://h.example/next?page=2&model=some-model-id"], "Content-Type": ["application/json"]}, []),
])
def test_values_set_by_response_reads_cookies_location_tokens_and_credential_headers(headers, expected):
    assert values_set_by_response(headers) == expected

