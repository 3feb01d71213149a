"""CTC speech recognition on a synthesized digits corpus; see ``recipes.asr_ctc.train``."""
