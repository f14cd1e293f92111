"""Rules: the pure state machines (failure detectors, heartbeat policies, reconnect backoff, the NAT
mapping's idle rule). Events and times in, declarations and deadlines out: no clock, no I/O, no
randomness of their own. The SimPy model drives them with ``env.now``; the real-socket harness
drives the same code with the event loop's clock.

Layer 1: imports only the ground modules (errors, units, rng, io).
"""
