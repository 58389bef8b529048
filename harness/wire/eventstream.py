"""The AWS event stream (ConverseStream bodies): frames carry lengths and CRCs, so a payload is
re-framed rather than edited in place. One codec for the adapters, recording, scanning and derivation."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

CONTENT_TYPE = "application/vnd.amazon.eventstream"


EventHeader = tuple[str, int, bytes]  # name, wire type (7 = string), raw value


def encode_event_message(headers: list[EventHeader] | Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (lengths + CRC32), headers, payload, message CRC32."""
    items = [(k, 7, v.encode("utf-8")) for k, v in headers.items()] if isinstance(headers, Mapping) else headers
    encoded = b""
    for name, kind, value in items:
        raw_name = name.encode("utf-8")
        sized = kind in (6, 7)
        encoded += struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!B", kind)
        encoded += (struct.pack("!H", len(value)) if sized else b"") + value
    prelude = struct.pack("!II", 16 + len(encoded) + len(payload), len(encoded))
    message = prelude + struct.pack("!I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))


_FIXED_HEADER_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}


def decode_event_stream(data: bytes) -> list[tuple[list[EventHeader], bytes]]:
    """Every message of an event-stream body as (headers, payload); CRCs are checked."""
    messages = []
    at = 0
    while at < len(data):
        if len(data) - at < 16:
            raise ValueError(f"event stream truncated at byte {at}")
        total, headers_length, prelude_crc = struct.unpack("!III", data[at : at + 12])
        message = data[at : at + total]
        if len(message) != total or zlib.crc32(message[:8]) != prelude_crc:
            raise ValueError(f"event stream message at byte {at} is truncated or its prelude CRC is wrong")
        if zlib.crc32(message[:-4]) != struct.unpack("!I", message[-4:])[0]:
            raise ValueError(f"event stream message at byte {at} fails its CRC")
        raw, headers, pos = message[12 : 12 + headers_length], [], 0
        while pos < len(raw):
            name_length = raw[pos]
            name = raw[pos + 1 : pos + 1 + name_length].decode("utf-8")
            kind = raw[pos + 1 + name_length]
            pos += 2 + name_length
            if kind in (6, 7):
                size = struct.unpack("!H", raw[pos : pos + 2])[0]
                pos += 2
            else:
                size = _FIXED_HEADER_SIZES[kind]
            headers.append((name, kind, raw[pos : pos + size]))
            pos += size
        messages.append((headers, message[12 + headers_length : -4]))
        at += total
    return messages
