"""Roles: tool roles never reach a wire; custom conversions add to the default mapping.

Every test checks the roles and text sent (written down here) and the returned message.
"""

from __future__ import annotations

import pytest

from conftest import text_of

AGENT_TURNS = [
    {"role": "system", "content": "You are an agent. Answer briefly."},
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "tool-call", "content": [{"type": "text", "text": "Calling tools: get_weather(city='Paris')"}]},
    {"role": "tool-response", "content": [{"type": "text", "text": "Observation: Sunny, 21 C"}]},
    {"role": "user", "content": "Now answer the question."},
]


def _assert_alternates(roles: list[str]) -> None:
    for a, b in zip(roles, roles[1:]):
        assert a != b, f"consecutive messages share role {a!r}: {roles}"


@pytest.mark.clause("roles.tool-roles-converted", "messages.wire-roles-only")
def test_tool_roles_become_assistant_and_user(model, wire):
    message = model(AGENT_TURNS)
    sent = wire.last()
    assert sent.roles == ["system", "user", "assistant", "user"], sent.roles
    joined = "\n".join(sent.texts)
    for turn in AGENT_TURNS:
        text = turn["content"] if isinstance(turn["content"], str) else turn["content"][0]["text"]
        assert text in joined, f"lost {text!r}"
    assert text_of(message).strip()


@pytest.mark.clause("roles.custom-conversion")
def test_custom_conversion_adds_to_default(model_factory, wire):
    model = model_factory(custom_role_conversions={"system": "user"})
    message = model(AGENT_TURNS)
    assert text_of(message).strip(), f"no text returned: {message.content!r}"
    sent = wire.last()
    assert set(sent.roles) <= {"user", "assistant"}, f"non-converted role on the wire: {sent.roles}"
    assert "tool-call" not in sent.roles and "tool-response" not in sent.roles
    assert sent.roles[0] == "user"
    _assert_alternates(sent.roles)
    # system->user merges with the user turn; tool-call->assistant; tool-response->user merges with the last
    assert sent.roles == ["user", "assistant", "user"], sent.roles
    assert "You are an agent." in sent.texts[0] and "What is the weather in Paris?" in sent.texts[0]
    assert sent.texts[0].find("You are an agent.") < sent.texts[0].find("What is the weather")
    assert "Observation: Sunny, 21 C" in sent.texts[2] and "Now answer the question." in sent.texts[2]


@pytest.mark.clause("roles.system-kept")
def test_system_role_kept_by_default(model, wire):
    message = model([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}])
    assert wire.last().roles == ["system", "user"]
    assert wire.last().texts == ["Be brief.", "Say hello."]
    assert text_of(message).strip(), f"no text returned: {message.content!r}"


@pytest.mark.no_cassette
@pytest.mark.clause("roles.unknown-role-is-clear-error")
def test_unknown_role_is_a_clear_error(model, wire):
    """Reply side: a ValueError naming the role; wire side: nothing was sent."""
    with pytest.raises(ValueError, match="robot"):
        model([{"role": "robot", "content": "beep"}])
    assert wire.calls() == [], "a request was sent for invalid input"
