"""Projections that follow the committed events: derived views rebuilt from the log."""
