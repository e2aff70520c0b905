"""Readers and writers: cohort store, imaging files, tables."""
