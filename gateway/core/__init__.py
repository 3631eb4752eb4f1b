"""Imports nothing of ours: the model, texts, JSON codec and small helpers every other package uses."""
