"""model-conformance: the smolagents Model contract, and a harness that proves backends keep it."""

from harness.contract.errors import (
    BackendError,
    ContentFilterError,
    HarnessError,
    MissingDependencyError,
    ToolCallParseError,
    UnknownBackendError,
)
from harness.contract.messages import get_clean_message_list
from harness.contract.model import (
    REMOVE_PARAMETER,
    ApiModel,
    Model,
    Request,
    agglomerate_stream_deltas,
    supports_stop_parameter,
    tool_json_schema,
)
from harness.contract.stop_sequences import StopScanner, trim_at_stop, validate_stop_sequences
from harness.contract.tool_calls import parse_arguments, parse_json_blob, tool_call_from_text
from harness.contract.types import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    TokenUsage,
)

__all__ = [
    "REMOVE_PARAMETER",
    "ApiModel",
    "BackendError",
    "ChatMessage",
    "ChatMessageStreamDelta",
    "ChatMessageToolCall",
    "ChatMessageToolCallFunction",
    "ChatMessageToolCallStreamDelta",
    "ContentFilterError",
    "HarnessError",
    "MessageRole",
    "MissingDependencyError",
    "Model",
    "Request",
    "StopScanner",
    "TokenUsage",
    "ToolCallParseError",
    "UnknownBackendError",
    "agglomerate_stream_deltas",
    "get_clean_message_list",
    "parse_arguments",
    "parse_json_blob",
    "supports_stop_parameter",
    "tool_call_from_text",
    "tool_json_schema",
    "trim_at_stop",
    "validate_stop_sequences",
]
