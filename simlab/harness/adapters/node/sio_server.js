// A Socket.IO server, websocket transport only, with Engine.IO's own heartbeat:
// a ping packet every pingInterval; a client that sends no pong within
// pingTimeout is closed ("ping timeout").
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { emitter, parseArgs, fail } = require('./events');

const usage = 'node sio_server.js [--pingInterval 25000] [--pingTimeout 20000] HOST PORT';
const [opts, rest] = parseArgs(process.argv.slice(2), { pingInterval: 25000, pingTimeout: 20000 }, usage);
if (rest.length !== 2) fail('need HOST and PORT', usage);
if (!(opts.pingInterval > 0 && opts.pingTimeout > 0)) fail('--pingInterval and --pingTimeout must be > 0', usage);
const event = emitter('socket.io', 'server');

const httpServer = http.createServer();
const io = new Server(httpServer, {
  pingInterval: opts.pingInterval,
  pingTimeout: opts.pingTimeout,
  transports: ['websocket'],
});
let nextId = 0;

io.on('connection', (socket) => {
  const id = ++nextId;
  event('open', { conn: id, sid: socket.id });
  socket.conn.on('packetCreate', (p) => { if (p.type === 'ping') event('ping_sent', { conn: id }); });
  socket.conn.on('packet', (p) => { if (p.type === 'pong') event('pong_received', { conn: id }); });
  socket.on('disconnect', (reason) => {
    event('close', { conn: id, cause: reason === 'ping timeout' ? 'timeout' : reason, reason });
  });
});

httpServer.on('error', (err) => fail(`cannot listen on ${rest[0]}:${rest[1]}: ${err.message}`, usage));
httpServer.listen(Number(rest[1]), rest[0], () => {
  const a = httpServer.address();
  event('listening', { addr: `${a.address}:${a.port}`, pingInterval: opts.pingInterval, pingTimeout: opts.pingTimeout });
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
