"""The HTTP stacks, defined once (harness.wire.transports): every hook covers every installed stack,
a request that escapes them stops at once in replay, and the capture self-check refuses a backend
whose requests are not captured."""

from __future__ import annotations

import pytest

from harness.recording.capture import Capture, capture_http
from harness.recording.capture_check import check_capture
from harness.recording.network import CaptureEscapeError, block_network
from harness.wire import transports

INSTALLED = transports.httpx_stacks()


def test_httpx_and_httpx2_are_both_hooked() -> None:
    # openai 3 and huggingface_hub 2 send through httpx2; the releases before them through httpx
    assert [(s.client, s.core) for s in transports.HTTPX_STACKS] == [("httpx", "httpcore"), ("httpx2", "httpcore2")]


@pytest.mark.parametrize("stack", INSTALLED, ids=[s.name for s in INSTALLED])
def test_capture_sees_a_request_of_every_installed_stack(stack: transports.LoadedStack) -> None:
    client = stack.client
    transport = client.MockTransport(lambda request: client.Response(200, json={"ok": True}))
    capture = Capture()
    with capture_http(capture):
        client.Client(transport=transport).post("http://127.0.0.1:9/v1/chat/completions", json={"model": "m"})
    assert [(r.stack, r.method, r.body) for r in capture.http] == [(stack.name, "POST", {"model": "m"})]


@pytest.mark.parametrize("stack", INSTALLED, ids=[s.name for s in INSTALLED])
def test_a_transport_error_of_every_installed_stack_is_typed(stack: transports.LoadedStack) -> None:
    from adapters._openai_wire import translate_transport_error

    request = stack.client.Request("POST", "http://127.0.0.1:9/")
    reset = translate_transport_error(stack.client.ReadError("peer reset", request=request), "inference-client")
    slow = translate_transport_error(stack.client.ReadTimeout("slow", request=request), "inference-client")
    assert reset is not None and reset.kind == "connection"
    assert slow is not None and slow.kind == "timeout"
    assert translate_transport_error(ValueError("not a transport error"), "inference-client") is None


def _openai_model() -> object:
    pytest.importorskip("openai")
    from adapters.openai import OpenAIServerModel

    return OpenAIServerModel(model_id="m", api_base="http://127.0.0.1:9/v1", api_key="k",
                             client_kwargs={"max_retries": 5})


def test_an_escaping_request_stops_at_once_naming_backend_cassette_and_carrier() -> None:
    model = _openai_model()
    with block_network("backend openai, cassette c.yaml"), pytest.raises(CaptureEscapeError) as info:
        model.generate([{"role": "user", "content": "hi"}])  # type: ignore[attr-defined]
    # not an Exception: the SDK's retry loop (max_retries=5, with back-off) never sees it
    assert not isinstance(info.value, Exception)
    text = str(info.value)
    assert text.startswith("backend openai, cassette c.yaml: a request escaped capture through 'httpcore")
    assert "127.0.0.1" in text


def test_without_a_guard_the_network_refusal_stays_an_oserror() -> None:
    import socket

    with block_network(), pytest.raises(OSError, match="replay mode blocks the network"):
        socket.create_connection(("127.0.0.1", 9))


def test_the_capture_self_check_names_the_stack_that_carried_the_probe() -> None:
    check = check_capture("openai", _openai_model)
    assert check.refused is None
    assert check.stacks and set(check.stacks) <= {s.client for s in transports.HTTPX_STACKS}


def test_the_capture_self_check_refuses_a_backend_whose_stack_is_not_hooked(monkeypatch: pytest.MonkeyPatch) -> None:
    used = check_capture("openai", _openai_model).stacks[0]
    monkeypatch.setattr(transports, "HTTPX_STACKS", tuple(s for s in transports.HTTPX_STACKS if s.client != used))
    check = check_capture("openai", _openai_model)
    assert check.stacks == []
    assert check.refused is not None
    assert check.refused.startswith("backend openai (capture self-check): a request escaped capture through "
                                    f"'{used.replace('httpx', 'httpcore')}'")
    assert check.refused.endswith("refusing to run backend openai")


def test_a_fault_run_reaches_its_injector_and_nothing_else() -> None:
    import socket

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        port = listening.getsockname()[1]
        with block_network("backend openai, fault reset", allow=("127.0.0.1", port)):
            with socket.create_connection(("127.0.0.1", port)):
                pass
            with pytest.raises(CaptureEscapeError, match=r"^backend openai, fault reset: .*a connection to "
                               rf".*a fault run only 127.0.0.1:{port}"), socket.socket() as other:
                other.connect(("127.0.0.1", port + 1 if port < 65535 else port - 1))


class _PartsOnly:
    """A subject's class that takes list-of-parts content only (as smolagents' Bedrock class does): string content
    fails before anything is sent. Its own request goes out through the openai SDK."""

    def generate(self, messages: list[dict]) -> None:
        content = messages[0]["content"]
        if isinstance(content, str):
            raise TypeError("Invalid type for parameter messages[0].content: <class 'str'>")
        _openai_model().generate([{"role": "user", "content": content[0]["text"]}])


def test_the_capture_self_check_probes_again_with_parts_when_string_content_fails_before_sending() -> None:
    check = check_capture("openai", _PartsOnly)
    assert check.refused is None and check.stacks


def test_a_refused_capture_leaves_its_checks_unjudged_not_failed() -> None:
    from harness.reporting.interop import must_failures
    from harness.reporting.levels import level_headline

    class _NeverSends:
        def generate(self, messages: list[dict]) -> None:
            raise TypeError("fails on every content form, before sending")

    check = check_capture("openai", _NeverSends)
    assert check.refused is not None and "its probe call sent no request" in check.refused
    row = {"subject": "smolagents", "backend": "openai", "suite": "s", "clause": "t", "level": "must",
           "clauses": ["messages.string-content"], "outcome": "failed", "message": check.refused,
           "extra": {"unjudged": "the harness could not prove the capture of its requests"}}
    breaks, unjudged = must_failures([row])
    assert breaks == [] and unjudged[0]["why unjudged"] == "the harness could not prove the capture of its requests"
    assert level_headline([row]) == [{"subject": "smolagents", "level": "MUST", "openai": "-"}]
