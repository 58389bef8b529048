"""Messages format: string and list-of-parts content, mixed, merged, flattened, never mutated.

Every test checks the request as sent (roles and text on the wire, written down here) and the
returned message (an assistant message with text).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest

from conftest import assert_usage, text_of


def _assert_assistant_text(message, contract):
    assert message.role in (contract.MessageRole.ASSISTANT, "assistant"), f"role {message.role!r}"
    assert text_of(message).strip(), f"no text returned: {message.content!r}"

WIRE_ROLES = {"system", "user", "assistant"}


def _no_consecutive_roles(roles: list[str]) -> None:
    for a, b in zip(roles, roles[1:]):
        assert a != b, f"consecutive messages share role {a!r}: {roles}"


@pytest.mark.clause("messages.string-content", "model.returns-content")
def test_string_content(model, wire, contract):
    message = model([{"role": "user", "content": "Say hello."}])
    sent = wire.last()
    assert sent.roles == ["user"]
    assert sent.texts == ["Say hello."]
    assert message.role in (contract.MessageRole.ASSISTANT, "assistant")
    assert isinstance(message.content, str) and message.content.strip()


@pytest.mark.requires("token_usage")
@pytest.mark.clause("usage.token-usage")
def test_token_usage_filled(model, wire):
    message = model([{"role": "user", "content": "Say hello."}])
    assert_usage(message)
    assert (wire.last().roles, wire.last().texts) == (["user"], ["Say hello."])


@pytest.mark.clause("messages.parts-content", "model.returns-content")
def test_list_of_parts_content(model, wire, contract):
    message = model([{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}])
    assert (wire.last().roles, wire.last().texts) == (["user"], ["Say hello."])
    _assert_assistant_text(message, contract)


@pytest.mark.clause("messages.mixed-forms")
def test_mixed_string_and_parts_in_one_conversation(model, wire):
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [{"type": "text", "text": "What is 2 + 2?"}]},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": [{"type": "text", "text": "And 3 + 3?"}]},
    ]
    message = model(messages)
    sent = wire.last()
    assert sent.roles == ["system", "user", "assistant", "user"]
    assert sent.texts == ["You are a helpful assistant.", "What is 2 + 2?", "4", "And 3 + 3?"]
    assert text_of(message).strip()


@pytest.mark.clause("messages.every-text-part-kept")
def test_every_text_part_kept_in_order(model, wire, contract):
    parts = ["First: Paris.", "Second: Rome.", "Third: Madrid."]
    message = model([{"role": "user", "content": [{"type": "text", "text": p} for p in parts]}])
    _assert_assistant_text(message, contract)
    assert wire.last().roles == ["user"]
    text = wire.last().texts[0]
    positions = [text.find(p) for p in parts]
    assert -1 not in positions, f"a text part was lost: {text!r}"
    assert positions == sorted(positions), f"parts out of order: {text!r}"


@pytest.mark.clause("messages.every-text-part-kept")
def test_consecutive_same_role_merged_without_losing_text(model, wire):
    messages = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
    ]
    message = model(messages)
    sent = wire.last()
    _no_consecutive_roles(sent.roles)
    assert sent.roles == ["user"], f"two user messages not merged into one: {sent.roles}"
    joined = sent.texts[0]
    assert "My name is Ada." in joined and "What is my name?" in joined
    assert joined.find("My name is Ada.") < joined.find("What is my name?")
    assert text_of(message).strip()


@pytest.mark.clause("messages.chat-message-objects")
def test_chat_message_objects_accepted(model, wire, contract):
    messages = [
        contract.ChatMessage(role=contract.MessageRole.SYSTEM, content="You are terse."),
        {"role": "user", "content": "Say hello."},
    ]
    message = model(messages)
    assert wire.last().roles == ["system", "user"]
    assert wire.last().texts == ["You are terse.", "Say hello."]
    _assert_assistant_text(message, contract)


@pytest.mark.clause("messages.flatten-as-text")
def test_flatten_messages_as_text(model, wire, contract):
    parts = [{"type": "text", "text": "Say"}, {"type": "text", "text": "hello."}]
    message = model([{"role": "system", "content": "Be brief."}, {"role": "user", "content": parts}],
          flatten_messages_as_text=True)
    sent = wire.last()
    for m in sent.messages:
        assert isinstance(m["content"], str), f"content not flattened: {m['content']!r}"
    assert sent.roles == ["system", "user"]
    assert sent.messages[0]["content"] == "Be brief."
    user = sent.messages[-1]["content"]
    assert "Say" in user and "hello." in user and user.find("Say") < user.find("hello.")
    _assert_assistant_text(message, contract)


@pytest.mark.no_cassette
@pytest.mark.clause("messages.flatten-as-text", "constructor.same-effect")
def test_flatten_messages_as_text_given_when_built(model_factory, wire, responder, contract):
    """flatten_messages_as_text=True given to the constructor flattens every call's messages, as given to a call."""
    from responder import Reply

    responder.reply = Reply(text="Hello.")
    model = model_factory(flatten_messages_as_text=True)
    parts = [{"type": "text", "text": "Say"}, {"type": "text", "text": "hello."}]
    message = model([{"role": "system", "content": "Be brief."}, {"role": "user", "content": parts}])
    sent = wire.last()
    for m in sent.messages:
        assert isinstance(m["content"], str), f"content not flattened: {m['content']!r}"
    assert sent.roles == ["system", "user"]
    assert sent.messages[0]["content"] == "Be brief."
    user = sent.messages[-1]["content"]
    assert "Say" in user and "hello." in user and user.find("Say") < user.find("hello.")
    _assert_assistant_text(message, contract)


@pytest.mark.clause("messages.not-mutated")
def test_callers_messages_not_mutated(model, wire, contract):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Say hello."}]},
        {"role": "user", "content": "Please."},
    ]
    before = copy.deepcopy(messages)
    message = model(messages)
    assert messages == before
    sent = wire.last()
    assert sent.roles == ["system", "user"]
    assert sent.texts[0] == "You are terse."
    assert sent.texts[1].find("Say hello.") < sent.texts[1].find("Please.") and "Say hello." in sent.texts[1]
    _assert_assistant_text(message, contract)


@pytest.mark.clause("messages.wire-roles-only")
def test_only_wire_roles_sent(model, wire, contract):
    message = model([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}])
    assert set(wire.last().roles) <= WIRE_ROLES
    assert wire.last().texts == ["Be brief.", "Say hello."]
    _assert_assistant_text(message, contract)


BAD_CONVERSATIONS = {
    "no_role": ([{"role": "user", "content": "Hi."}, {"content": "Hi."}], ValueError, r"messages\[1\].*'role'"),
    "not_a_message": ([{"role": "user", "content": "Hi."}, 42], TypeError, r"messages\[1\].*\bint\b"),
    "object_without_role": ([SimpleNamespace(content="Hi.")], TypeError, r"messages\[0\]"),
    "role_not_a_string": ([{"role": 42, "content": "Hi."}], TypeError, r"messages\[0\]\.role.*\b42\b.*\bint\b"),
    "content_not_text_or_parts": ([{"role": "user", "content": 42}], TypeError, r"messages\[0\]\.content.*\bint\b"),
    "part_without_type": ([{"role": "user", "content": [{"text": "Hi."}]}], ValueError,
                          r"messages\[0\]\.content\[0\]"),
    "text_part_without_text": ([{"role": "user", "content": [{"type": "text", "text": "Hi."},
                                                              {"type": "text", "text": 5}]}],
                               (TypeError, ValueError), r"messages\[0\]\.content\[1\]"),
    "not_a_list": ("Hi.", TypeError, r"messages must be a list.*\bstr\b"),
    "empty": ([], ValueError, r"\bmessages\b.*\bempty\b"),
    "not_a_sequence": (42, TypeError, r"\bmessages\b.*\bint\b"),
}


@pytest.mark.no_cassette
@pytest.mark.parametrize("case", sorted(BAD_CONVERSATIONS))
@pytest.mark.clause("messages.malformed-is-clear-error")
def test_malformed_conversation_is_a_clear_error(model, wire, case):
    """Reply side: an error naming where the conversation is wrong; wire side: nothing was sent."""
    messages, error, where = BAD_CONVERSATIONS[case]
    with pytest.raises(error, match=where):
        model(messages)
    assert wire.calls() == [], "a request was sent for invalid input"


@pytest.mark.no_cassette
@pytest.mark.parametrize("conversions, named", [({"system": "robot"}, "robot"), ({"robot": "user"}, "robot")],
                         ids=["target_not_a_wire_role", "unknown_source_role"])
@pytest.mark.clause("roles.bad-conversion-is-clear-error")
def test_bad_custom_role_conversion_is_a_clear_error(model_factory, wire, conversions, named):
    """Reply side: constructing the model fails naming the role; wire side: nothing was sent."""
    with pytest.raises(ValueError, match=named):
        model_factory(custom_role_conversions=conversions)([{"role": "user", "content": "Hi."}])
    assert wire.calls() == []


@pytest.mark.no_cassette
@pytest.mark.clause("roles.bad-conversion-is-clear-error")
def test_custom_role_conversion_not_a_string_is_a_clear_error(model_factory, wire):
    """Reply side: constructing the model fails with a TypeError naming the parameter and the value; wire side:
    nothing was sent."""
    with pytest.raises(TypeError, match=r"\bcustom_role_conversions\b.*\b42\b"):
        model_factory(custom_role_conversions={"system": 42})([{"role": "user", "content": "Hi."}])
    assert wire.calls() == []
