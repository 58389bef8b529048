"""The contract: its types, message normalisation, stop sequences, tool calls, errors, the one definition of a
secret, and the ``Model`` pipeline every adapter shares. The lowest layer: it imports nothing else of the harness."""
