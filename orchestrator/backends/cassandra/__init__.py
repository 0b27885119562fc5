"""The Cassandra backends: event log, registry, timers and wait index over one keyspace."""
