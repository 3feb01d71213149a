"""Reference recipes: training scripts that record into tympan, exactly as a user writes them."""
