"""Fleets: many clients reconnecting at once (reconnect storms), their backoff policies, admission
at the server and session resume.

Layer 4: imports the ground, rules, scenario and engines.
"""
