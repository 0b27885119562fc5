"""The pure core: commands, events, state, the machine and the replay fold. No I/O, no clock, no randomness."""
