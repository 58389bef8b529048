"""The wire codecs: the AWS event stream, the chat-completions <-> Converse translation, the HTTP stacks the
SDKs send through. Shared by adapters, recording and derivation; they import only the contract."""
