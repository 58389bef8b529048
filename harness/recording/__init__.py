"""Recording: cassettes, request capture, secret scanning, fault injection and the derivation of the cloud
backends' cassettes. Imports the wire codecs and the contract."""
