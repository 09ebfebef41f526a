"""Helpers shared by the test modules (not tests): repositories and mrl processes (repo),
records and experiments (records), runner processes (processes), reports (html)."""
