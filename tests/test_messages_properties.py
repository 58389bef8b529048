"""Laws of the one message normaliser, ``harness.contract.messages.get_clean_message_list``."""

from __future__ import annotations

import copy
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.contract.messages import DEFAULT_ROLE_CONVERSIONS, TEXT_JOINER, get_clean_message_list, role_conversions
from harness.contract.types import WIRE_ROLES, ChatMessage, MessageRole

ROLES = MessageRole.roles()

# Small texts, newlines included: the joiner itself must not confuse the laws.
texts = st.text(alphabet="ab \n", max_size=6)
text_parts = texts.map(lambda t: {"type": "text", "text": t})
image_parts = st.sampled_from([{"type": "image", "image": "aGVsbG8="}, {"type": "image", "image": b"\x89PNG"}])
parts = st.one_of(text_parts, image_parts)
contents = st.one_of(st.none(), texts, st.lists(parts, max_size=4))
roles = st.sampled_from(ROLES)


@st.composite
def messages_lists(draw: st.DrawFn) -> list[Any]:
    """Dicts and ChatMessages mixed, roles as strings or MessageRole, content in either form."""
    out: list[Any] = []
    for _ in range(draw(st.integers(0, 7))):
        role = draw(roles)
        content = draw(contents)
        kind = draw(st.sampled_from(["dict", "dict-enum", "chat"]))
        if kind == "dict":
            out.append({"role": role, "content": content})
        elif kind == "dict-enum":
            out.append({"role": MessageRole(role), "content": content})
        else:
            out.append(ChatMessage(role=MessageRole(role), content=content))
    return out


conversions = st.dictionaries(st.sampled_from(ROLES), st.sampled_from(sorted(WIRE_ROLES)), max_size=5)


def _idempotent(mapping: dict[str, str]) -> bool:
    # re-normalising re-applies the mapping; it is stable only if no target is itself converted
    merged = {**DEFAULT_ROLE_CONVERSIONS, **mapping}
    return all(merged.get(target, target) == target for target in merged.values())


def _role(message: Any) -> str:
    role = message.role if isinstance(message, ChatMessage) else message["role"]
    return role.value if isinstance(role, MessageRole) else role


def _input_texts(message: Any) -> list[str]:
    content = message.content if isinstance(message, ChatMessage) else message["content"]
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    return [p["text"] for p in content if p["type"] == "text"]


def _output_texts(message: dict[str, Any]) -> list[str]:
    content = message["content"]
    if isinstance(content, str):
        return [content]
    return [p["text"] for p in content if p["type"] == "text"]


def _expected_roles(messages: list[Any], mapping: dict[str, str]) -> list[str]:
    merged = {**DEFAULT_ROLE_CONVERSIONS, **mapping}
    out: list[str] = []
    for message in messages:
        role = merged.get(_role(message), _role(message))
        if not out or out[-1] != role:
            out.append(role)
    return out


@given(messages_lists(), conversions.filter(_idempotent), st.booleans(), st.booleans())
def test_normalisation_is_idempotent(messages, mapping, flatten, images_as_urls):
    options = {"flatten_messages_as_text": flatten, "convert_images_to_image_urls": images_as_urls}
    once = get_clean_message_list(messages, role_conversions=mapping, **options)
    twice = get_clean_message_list(once, role_conversions=mapping, **options)
    assert twice == once


@given(messages_lists(), conversions)
def test_every_text_part_kept_in_order_as_parts(messages, mapping):
    out = get_clean_message_list(messages, role_conversions=mapping, convert_images_to_image_urls=False,
                                 flatten_messages_as_text=False)
    expected = [t for m in messages for t in _input_texts(m)]
    # merged messages join adjacent text parts on a new line (as smolagents does; an empty text adds
    # nothing): no text lost, order kept
    assert "\n".join(t for m in out for t in _output_texts(m) if t) == "\n".join(t for t in expected if t)


@given(messages_lists(), conversions)
def test_every_text_part_kept_in_order_when_flattened(messages, mapping):
    out = get_clean_message_list(messages, role_conversions=mapping, convert_images_to_image_urls=False,
                                 flatten_messages_as_text=True)
    assert all(isinstance(m["content"], str) for m in out)
    joined = TEXT_JOINER.join(m["content"] for m in out)
    position = 0
    for text in (t for m in messages for t in _input_texts(m)):
        found = joined.find(text, position)
        assert found >= 0, f"text part {text!r} lost or out of order in {joined!r}"
        position = found + len(text)


@given(messages_lists(), conversions, st.booleans())
def test_roles_are_wire_roles_and_never_repeat(messages, mapping, flatten):
    out = get_clean_message_list(messages, role_conversions=mapping, convert_images_to_image_urls=False,
                                 flatten_messages_as_text=flatten)
    out_roles = [m["role"] for m in out]
    assert set(out_roles) <= WIRE_ROLES
    assert all(a != b for a, b in pairwise(out_roles)), out_roles
    assert out_roles == _expected_roles(messages, mapping)


@given(conversions, st.sampled_from(["tool-call", "tool-response"]))
def test_custom_conversions_add_to_the_tool_role_defaults(mapping, tool_role):
    expected = mapping.get(tool_role, DEFAULT_ROLE_CONVERSIONS[tool_role])
    out = get_clean_message_list([{"role": tool_role, "content": "x"}], role_conversions=mapping,
                                 convert_images_to_image_urls=False, flatten_messages_as_text=False)
    assert [m["role"] for m in out] == [expected]
    merged = role_conversions(mapping)
    assert merged[tool_role] == expected
    assert {k: merged[k] for k in mapping} == mapping


def test_default_tool_roles_without_custom_conversions():
    out = get_clean_message_list(
        [{"role": "tool-call", "content": "call"}, {"role": "tool-response", "content": "result"}],
        role_conversions={"system": "user"}, convert_images_to_image_urls=False, flatten_messages_as_text=False,
    )
    assert [m["role"] for m in out] == ["assistant", "user"]


@given(messages_lists(), conversions, st.booleans(), st.booleans())
def test_callers_messages_are_never_mutated(messages, mapping, flatten, images_as_urls):
    snapshot = copy.deepcopy(messages)
    out = get_clean_message_list(
        messages,
        role_conversions=mapping,
        flatten_messages_as_text=flatten,
        convert_images_to_image_urls=images_as_urls,
    )
    assert messages == snapshot
    # nor aliased: editing the output, nested parts included, leaves the input alone
    for message in out:
        _scribble(message)
    assert messages == snapshot


def _scribble(value: Any) -> None:
    """Overwrite everything in ``value``, however deep (lists also grow)."""
    if isinstance(value, dict):
        for key in list(value):
            _scribble(value[key])
            value[key] = "EDITED"
    elif isinstance(value, list):
        for item in value:
            _scribble(item)
        value.append("EDITED")


@given(st.text(max_size=10).filter(lambda r: r not in ROLES), st.integers(0, 3))
def test_invalid_role_is_a_value_error_naming_it(bad_role, position):
    messages: list[Any] = [{"role": "user", "content": "x"}] * position + [{"role": bad_role, "content": "y"}]
    with pytest.raises(ValueError) as info:
        get_clean_message_list(messages, convert_images_to_image_urls=False, flatten_messages_as_text=False)
    assert repr(bad_role) in str(info.value)
    assert f"messages[{position}]" in str(info.value)


@pytest.mark.parametrize("target", ["banana", "tool-call", "tool-response", ""])
def test_invalid_conversion_target_is_a_value_error_in_role_conversions(target):
    with pytest.raises(ValueError, match="wire role"):
        role_conversions({"system": target})


def test_invalid_conversion_source_is_a_value_error_in_role_conversions():
    with pytest.raises(ValueError, match="banana"):
        role_conversions({"banana": "user"})


@pytest.mark.parametrize("target", ["banana", "tool-call"])
def test_invalid_conversion_target_is_a_value_error_in_get_clean_message_list(target):
    with pytest.raises(ValueError, match=repr(target)):
        get_clean_message_list([{"role": "system", "content": "x"}], role_conversions={"system": target},
                               convert_images_to_image_urls=False, flatten_messages_as_text=False)


def test_both_content_forms_and_chat_messages_mixed():
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="Be terse."),
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
        {"role": MessageRole.USER, "content": "again"},
        ChatMessage(role="assistant", content=[{"type": "text", "text": "Hello"}]),
        {"role": "tool-call", "content": "call"},
    ]
    assert get_clean_message_list(messages, convert_images_to_image_urls=False, flatten_messages_as_text=True) == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi\nthere\nagain"},
        {"role": "assistant", "content": "Hello\ncall"},
    ]
