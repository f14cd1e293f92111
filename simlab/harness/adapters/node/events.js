// JSON-lines events on stderr, stamped with CLOCK_MONOTONIC (process.hrtime on
// Linux), the clock of the other adapters and of Python's time.monotonic.
'use strict';

function emitter(lib, role) {
  return function event(name, fields) {
    const t = Number(process.hrtime.bigint()) / 1e9;
    process.stderr.write(JSON.stringify({ t, lib, role, event: name, ...fields }) + '\n');
  };
}

// Parse `--name value` flags (numbers) and positional arguments; a bad flag exits 2.
function parseArgs(argv, spec, usage) {
  const opts = {};
  const rest = [];
  for (const [name, value] of Object.entries(spec)) opts[name] = value;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) { rest.push(a); continue; }
    const name = a.slice(2);
    if (!(name in spec)) fail(`unknown flag ${a}; allowed: ${Object.keys(spec).map((k) => '--' + k).join(', ')}`, usage);
    if (typeof spec[name] === 'boolean') { opts[name] = true; continue; }
    const v = Number(argv[++i]);
    if (!Number.isFinite(v) || v < 0) fail(`${a} needs a number >= 0, got ${argv[i]}`, usage);
    opts[name] = v;
  }
  return [opts, rest];
}

function fail(message, usage) {
  process.stderr.write(`${message}\nusage: ${usage}\n`);
  process.exit(2);
}

module.exports = { emitter, parseArgs, fail };
