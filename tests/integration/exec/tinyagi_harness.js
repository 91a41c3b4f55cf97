// Spawns a CLI the way TinyAGI's adapter does: runCommand() in
// packages/core/src/invoke.ts of TinyAGI/tinyagi (commit 001477db):
// spawn(command, args, {cwd, stdio: ['ignore', 'pipe', 'pipe'], env})
// with env = {...process.env, ...overrides} minus CLAUDECODE, the command
// by name from PATH, stdout and stderr as utf8. That version collects
// stdout whole; the stream-json reader reads it line by line, so
// this one does (readline) and notes when each line arrives, and it stops
// a run with SIGTERM as TinyAGI's stop does (child.kill('SIGTERM')).
//
// usage: node tinyagi_harness.js CWD KILL_AFTER_MS COMMAND ARGS...
// prints one JSON object: {code, signal, lines:[{line, at}], stderr}
'use strict';
const { spawn } = require('child_process');
const readline = require('readline');

const [cwd, killAfter, command, ...args] = process.argv.slice(2);
const env = { ...process.env, TINYCLAW_AGENT_ID: 'alpha' };
delete env.CLAUDECODE;
const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env });
const lines = [];
let stderr = '';
child.stdout.setEncoding('utf8');
child.stderr.setEncoding('utf8');
readline.createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push({ line, at: Date.now() / 1000 });
});
child.stderr.on('data', (chunk) => { stderr += chunk; });
child.on('error', (e) => {
    process.stdout.write(JSON.stringify({ error: String(e) }) + '\n');
    process.exit(1);
});
if (Number(killAfter) > 0)
    setTimeout(() => child.kill('SIGTERM'), Number(killAfter));
child.on('close', (code, signal) => {
    process.stdout.write(JSON.stringify({ code, signal, lines, stderr, pid: child.pid }) + '\n');
});
