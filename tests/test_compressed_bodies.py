"""Compressed bodies are scrubbed and scanned as the SDK reads them.

A loopback stand-in (``harness.recording.fault_injector``, the one fake, standing in at the transport)
answers the real openai SDK with a reply compressed in each form the SDKs decode: stacked
(``gzip, gzip``), ``x-gzip``, upper case, two header lines, ``deflate`` with and without the zlib
wrapper, and gzip bytes sent without any Content-Encoding. The reply echoes the configured key and
an ``sk-``-shaped key; the cassette written must hold neither, and must replay to what the SDK read.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import pytest

from harness.cli import main as cli_main
from harness.contract.errors import BackendError
from harness.contract.secrets import UndecodableBodyError, decode_content, variants
from harness.plugin.replay import provenance
from harness.recording.cassettes import finalize_recording, make_vcr
from harness.recording.fault_injector import FaultInjector, Reply
from harness.recording.scan import scan_paths, scan_text

KEY = "canary-compressed-key-0021"  # has no recognisable shape: found only while it is configured
SHAPED = "sk-canaryshapedkey0000000022"  # shaped like an OpenAI key: found with no key configured


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


# (name, Content-Encoding header value or None, how the body is compressed)
FORMS = [
    ("gzip, gzip", "gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
    ("x-gzip", "x-gzip", gzip.compress),
    ("upper case GZIP", "GZIP", gzip.compress),
    ("deflate (zlib)", "deflate", zlib.compress),
    ("deflate (raw)", "deflate", _raw_deflate),
    ("deflate then gzip", "deflate, gzip", lambda b: gzip.compress(zlib.compress(b))),
    ("gzip with identity", "identity, gzip", gzip.compress),
]


def _completion() -> dict:
    return {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo {KEY} and {SHAPED}"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _planted_in(text: str) -> list[str]:
    return [form for value in (KEY, SHAPED) for form in variants(value) if form in text]


def _model(url: str):
    from adapters import OpenAIServerModel

    return OpenAIServerModel("m", api_base=f"{url}/v1", api_key=KEY)


@pytest.mark.parametrize(("form", "encoding", "compress"), FORMS, ids=[f[0] for f in FORMS])
def test_a_compressed_reply_is_recorded_decoded_and_scrubbed(form, encoding, compress, no_configured_secrets,
                                                             tmp_path):
    body = compress(json.dumps(_completion()).encode())
    path = tmp_path / "c.yaml"
    with FaultInjector([Reply.raw(body, headers={"Content-Encoding": encoding})]) as server:
        with make_vcr("record").use_cassette(str(path)):
            model = _model(server.url)
            if encoding == "x-gzip":  # httpx reads no x-gzip (urllib3, under boto3, does): recorded all the same
                with pytest.raises(Exception, match="could not be read"):
                    model.generate([{"role": "user", "content": "hi"}])
            else:
                assert KEY in model.generate([{"role": "user", "content": "hi"}]).content  # what the SDK read
    finalize_recording(path, provenance("openai", "adapters", "compressed", server="stand-in"), KEY)
    written = path.read_text(encoding="utf-8")
    assert _planted_in(written) == []
    assert scan_text(written, path.name, [KEY]) == []
    assert "content-encoding" not in written.lower()  # stored as read: plain, and said so
    with make_vcr("replay").use_cassette(str(path)):
        replayed = _model("http://127.0.0.1:9").generate([{"role": "user", "content": "hi"}])
    assert replayed.content == "echo REDACTED:key-passed-in-code and REDACTED:openai-key"  # kinds named


def test_gzip_sent_without_saying_so_is_scrubbed_inside_and_stays_gzip(no_configured_secrets, tmp_path):
    data = json.dumps({"error": {"message": f"echo {KEY} and {SHAPED}"}}).encode()
    path = tmp_path / "c.yaml"
    with FaultInjector([Reply.raw(gzip.compress(data), 500, content_type="application/octet-stream")]) as server:
        with make_vcr("record").use_cassette(str(path)), pytest.raises(BackendError):  # a 500, not JSON
            model = _model(server.url)
            model._sleep = lambda seconds: None
            model.generate([{"role": "user", "content": "hi"}])
    finalize_recording(path, provenance("openai", "adapters", "compressed", server="stand-in"), KEY)
    import yaml

    interaction = yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"][0]
    stored = interaction["response"]["body"]["string"]
    assert stored[:2] == b"\x1f\x8b"  # replayed as it was sent
    assert gzip.decompress(stored) == json.dumps(
        {"error": {"message": "echo REDACTED:key-passed-in-code and REDACTED:openai-key"}}).encode()


def test_an_encoding_the_sdks_do_not_decode_is_refused_by_name():
    with pytest.raises(UndecodableBodyError, match="'compress' is not one the SDKs decode"):
        decode_content(b"x", ["compress"])
    with pytest.raises(UndecodableBodyError, match="does not decode as Content-Encoding 'gzip'"):
        decode_content(b"not gzip", ["gzip"])


# -- harness scan on every form, with and without the key in the environment --------------------

def _binary_cassette(data: bytes) -> str:
    import yaml

    return yaml.safe_dump({"interactions": [{"response": {"body": {"string": data}}}]})


def _scan_forms(root: Path) -> dict[str, Path]:
    """One file per form, each holding the configured key and the sk-shaped key."""
    text = f"echo {KEY} and {SHAPED}"
    files = {
        "gzip body as !!binary": ("gzip-binary.yaml", _binary_cassette(gzip.compress(text.encode())).encode()),
        "gzip, gzip body as !!binary": ("gzip2-binary.yaml",
                                        _binary_cassette(gzip.compress(gzip.compress(text.encode()))).encode()),
        "deflate body as !!binary": ("deflate-binary.yaml", _binary_cassette(zlib.compress(text.encode())).encode()),
        "folded scalar": ("folded.yaml", f"body: >-\n  echo\n  {KEY}\n  and\n  {SHAPED}\n".encode()),
        # a double-quoted scalar wrapped inside each key (an escaped line break joins the halves), as
        # PyYAML's emitter wraps a long string right after an escape sequence
        "wrapped scalar": ("wrapped.yaml", f'body: "\\techo {KEY[:10]}\\\n  {KEY[10:]} and {SHAPED[:12]}\\\n'
                                           f'  {SHAPED[12:]}"\n'.encode()),
        ".gz log": ("pytest.log.gz", gzip.compress(f"INFO sent\nDEBUG {text}\n".encode())),
    }
    root.mkdir()
    out = {}
    for form, (name, data) in files.items():
        (root / name).write_bytes(data)
        out[form] = root / name
    return out


def test_scan_reads_every_form_with_the_key_configured(no_configured_secrets, monkeypatch, tmp_path):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    for form, file in _scan_forms(tmp_path / "forms").items():
        found = scan_paths([file])
        assert any("a configured credential value" in f for f in found) or any(
            "matching" in f for f in found), (form, found)
        plain = file.read_bytes().replace(SHAPED.encode(), b"x")
        if file.suffix == ".gz" or b"!!binary" in plain:
            continue  # the compressed forms: the key is checked below, once the sk- key is out of the way
        file.write_bytes(plain)
        assert scan_paths([file]), (form, "the configured key alone was missed")


@pytest.mark.parametrize("compress", [gzip.compress, zlib.compress], ids=["gzip", "deflate"])
def test_scan_finds_the_configured_key_alone_in_a_compressed_binary_body(compress, no_configured_secrets,
                                                                         monkeypatch, tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text(_binary_cassette(compress(f"echo {KEY}".encode())), encoding="utf-8")
    assert scan_paths([file]) == []  # not configured, no shape: nothing to find it by
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    assert scan_paths([file]) == [f"{file}:4: a configured credential value"]


def test_scan_without_the_key_still_reports_a_provider_shaped_key_in_every_form(no_configured_secrets, tmp_path,
                                                                              capsys):
    forms = _scan_forms(tmp_path / "forms")
    for form, file in forms.items():
        found = scan_paths([file])
        assert found and all("matching" in f for f in found), (form, found)
    assert cli_main(["scan", str(tmp_path / "forms")]) == 1
    printed = capsys.readouterr().out
    assert all(str(file) in printed for file in forms.values())
