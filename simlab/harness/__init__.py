"""The real-socket harness: the scenario's heartbeats over real TCP with the `websockets` library.

One process, one event loop runs both ends of every connection and the
impairments, so ground truth (when a peer crashed, when a link went down) is
known exactly. The detector is :mod:`simlab.rules.detector`'s pure state machine,
driven with the event loop's clock; the timing logic exists once.

- :mod:`.scale` shrinks a scenario's durations (``--time-scale``);
- :mod:`simlab.rules.nat` (the NAT idle-expiry rule), shared by the proxy and the netns inference;
- :mod:`.endpoint` heartbeats and the detector on a live connection;
- :mod:`.proxy` the portable backend: an asyncio relay on 127.0.0.1;
- :mod:`.netns` the Linux backend: namespaces, veths, a netfilter NAT, nftables loss;
- :mod:`.accounting` raw events -> the model's records and counters -> metrics;
- :mod:`.heap` keeps full garbage-collector passes out of a real run;
- :mod:`.run` one harness run; :mod:`.load` the 5,000-connection load test;
- :mod:`.net` the netns lab kept up for your own programs (``simlab net``);
- :mod:`.wire` observation from the wire: a capture in the NAT namespace read back into
  the same records, with no instrumentation of the programs;
- :mod:`.external` your own server and client commands in the netns lab, seen from the
  wire and compared with the model (``simlab crosscheck --server-cmd/--client-cmd``);
- :mod:`.adapters` real stacks (gorilla/websocket, Node ws, Socket.IO, headless Chromium,
  python websockets) with their own keepalive, started as argument lists.
"""
