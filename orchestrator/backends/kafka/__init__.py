"""The Kafka backends: the transport, its wire codec, and the client plumbing triggers and connectors share."""
