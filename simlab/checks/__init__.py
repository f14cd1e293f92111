"""Checks: the validation panel (``simlab validate``): engines against the model and closed forms.

Layer 7.
"""
