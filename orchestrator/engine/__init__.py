"""The write side: the engine, the effects of a commit, the step worker, snapshots."""
