"""Generative models, one per file. See ``genlab.registry`` for the list."""
