"""Scenario: what a user can say. The typed frozen configuration (:mod:`.schema`), the one reader
of user input (:mod:`.reader`), delay distributions, presets and networks, the curated field data
and library translations.

Layer 2: imports the ground and :mod:`simlab.rules`.
"""
