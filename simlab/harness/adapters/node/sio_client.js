// A Socket.IO client, websocket transport only, no reconnection. Its deadline
// is Socket.IO's own: closed ("ping timeout") when no ping came for
// pingInterval + pingTimeout, both learned from the server's handshake.
// It exits when the connection closes.
'use strict';
const { io } = require('socket.io-client');
const { emitter, parseArgs, fail } = require('./events');

const usage = 'node sio_client.js URL';
const [, rest] = parseArgs(process.argv.slice(2), {}, usage);
if (rest.length !== 1) fail('need URL', usage);
const event = emitter('socket.io', 'client');
const url = rest[0].replace(/^ws(s?):/, 'http$1:');

const socket = io(url, { transports: ['websocket'], reconnection: false });
socket.on('connect', () => {
  const engine = socket.io.engine;
  event('open', { url, sid: socket.id });
  engine.on('packet', (p) => { if (p.type === 'ping') event('ping_received', {}); });
  engine.on('packetCreate', (p) => { if (p.type === 'pong') event('pong_sent', {}); });
});
socket.on('disconnect', (reason) => {
  event('close', { cause: reason === 'ping timeout' ? 'timeout' : reason, reason });
  process.exit(0);
});
socket.on('connect_error', (err) => {
  event('close', { cause: 'error', error: err.message });
  process.exit(1);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
