"""Tracking: the writer API for runs."""
