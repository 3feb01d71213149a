"""What the web UI's pages show, as plain data built from ``tympan.records``."""
