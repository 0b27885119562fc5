"""Cluster health: every process's heartbeat, who owns which partition, and who is gone."""
