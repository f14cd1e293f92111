// A Node `ws` client: ws answers pings by itself. --deadline-ms N adds the
// client-side check of the ws README: terminate when no ping came for N ms
// (re-armed on open and on each ping). It exits when the connection closes.
'use strict';
const WebSocket = require('ws');
const { emitter, parseArgs, fail } = require('./events');

const usage = 'node ws_client.js [--deadline-ms N] URL';
const [opts, rest] = parseArgs(process.argv.slice(2), { 'deadline-ms': 0 }, usage);
if (rest.length !== 1) fail('need URL', usage);
const event = emitter('ws', 'client');

const client = new WebSocket(rest[0]);
let timedOut = false;

function heartbeat() {
  if (!opts['deadline-ms']) return;
  clearTimeout(this.pingTimeout);
  this.pingTimeout = setTimeout(() => {
    timedOut = true;
    this.terminate();
  }, opts['deadline-ms']);
}

client.on('open', function () {
  event('open', { url: rest[0], deadline_ms: opts['deadline-ms'] });
  heartbeat.call(this);
});
client.on('ping', function () {
  event('ping_received', {});
  heartbeat.call(this);
});
client.on('pong', () => event('pong_received', {}));
client.on('close', function (code) {
  clearTimeout(this.pingTimeout);
  event('close', { cause: timedOut ? 'timeout' : 'peer_close', code });
  process.exit(0);
});
client.on('error', (err) => {
  event('close', { cause: 'error', code: 1006, error: err.message });
  process.exit(1);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
