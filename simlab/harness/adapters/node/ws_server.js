// A Node `ws` server with the ws README's "detect broken connections" heartbeat:
// every interval it terminates the clients that did not answer the previous
// ping (isAlive false), then pings the others. A dead peer is therefore noticed
// between one and two intervals after its last pong.
// --app-pong: also answer the text message "ping <seq>" with "pong <seq>", the
// server side of the browser adapter's application-level heartbeat.
'use strict';
const { WebSocketServer } = require('ws');
const { emitter, parseArgs, fail } = require('./events');

const usage = 'node ws_server.js [--interval-ms 30000] [--app-pong] HOST PORT';
const [opts, rest] = parseArgs(process.argv.slice(2), { 'interval-ms': 30000, 'app-pong': false }, usage);
if (rest.length !== 2) fail('need HOST and PORT', usage);
if (!(opts['interval-ms'] > 0)) fail('--interval-ms must be > 0', usage);
const event = emitter('ws', 'server');

const wss = new WebSocketServer({ host: rest[0], port: Number(rest[1]) });
let nextId = 0;

function heartbeat() {
  this.isAlive = true;
  event('pong_received', { conn: this.id });
}

wss.on('connection', function connection(ws, req) {
  ws.id = ++nextId;
  ws.isAlive = true;
  event('open', { conn: ws.id, peer: `${req.socket.remoteAddress}:${req.socket.remotePort}` });
  ws.on('pong', heartbeat);
  ws.on('ping', () => event('ping_received', { conn: ws.id }));
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? '' : data.toString();
    if (opts['app-pong'] && text.startsWith('ping')) {
      event('app_ping_received', { conn: ws.id, data: text });
      ws.send('pong' + text.slice(4));
      event('app_pong_sent', { conn: ws.id });
    }
  });
  ws.on('close', (code) => {
    event('close', { conn: ws.id, cause: ws.terminated ? 'timeout' : 'peer_close', code });
  });
  ws.on('error', () => {});
});

const interval = setInterval(function ping() {
  wss.clients.forEach(function each(ws) {
    if (ws.isAlive === false) {
      ws.terminated = true;
      return ws.terminate();
    }
    ws.isAlive = false;
    ws.ping();
    event('ping_sent', { conn: ws.id });
  });
}, opts['interval-ms']);

wss.on('listening', () => {
  const a = wss.address();
  event('listening', { addr: `${a.address}:${a.port}`, interval_ms: opts['interval-ms'], app_pong: opts['app-pong'] });
});
wss.on('error', (err) => fail(`cannot listen on ${rest[0]}:${rest[1]}: ${err.message}`, usage));
wss.on('close', function close() {
  clearInterval(interval);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
