"""Closed forms and exact computations: Chen-Toueg-Aguilera's NFD-S figures and friends
(:mod:`.theory`), the loss chain of the analytic engine (:mod:`.chain`), NAT lifetimes
(:mod:`.natlife`), heartbeat overhead (:mod:`.overhead`) and the detection latency after a
silent break (:mod:`.detection`).
"""
