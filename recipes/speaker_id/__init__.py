"""x-vector speaker identification and verification on synthesized voices; see
``recipes.speaker_id.train``."""
