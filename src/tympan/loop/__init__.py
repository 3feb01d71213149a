"""Continuous training: retrain when data arrives, gate against the champion, promote."""
