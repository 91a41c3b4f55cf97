// Spawns a CLI the way TinyAGI 0.0.20 does: runCommandStreaming() in
// packages/core/src/invoke.ts (jlia0/tinyclaw tag v0.0.20, commit
// 1ae8b4eb), used by packages/core/src/adapters/claude.ts for
// `--output-format stream-json`: spawn(command, args, {cwd, stdio:
// ['ignore', 'pipe', 'pipe'], env}) with env = {...process.env,
// ...overrides} minus CLAUDECODE (the adapter adds IS_SANDBOX=1), the
// command by name from PATH; stdout as utf8 split into lines on '\n' as
// chunks arrive (the last, incomplete piece kept for the next chunk);
// stderr collected; a run stopped with child.kill('SIGTERM') as
// killAgentProcess() does. Each line is noted with when it arrived.
//
// usage: node tinyagi_harness.js CWD KILL_AFTER_MS COMMAND ARGS...
// prints one JSON object: {code, signal, lines:[{line, at}], stderr, pid}
'use strict';
const { spawn } = require('child_process');

const [cwd, killAfter, command, ...args] = process.argv.slice(2);
const env = { ...process.env, IS_SANDBOX: '1', TINYCLAW_AGENT_ID: 'alpha' };
delete env.CLAUDECODE;
const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env });
const lines = [];
let stderr = '';
let lineBuffer = '';
const onLine = (line) => lines.push({ line, at: Date.now() / 1000 });
child.stdout.setEncoding('utf8');
child.stderr.setEncoding('utf8');
child.stdout.on('data', (chunk) => {
    lineBuffer += chunk;
    const parts = lineBuffer.split('\n');
    lineBuffer = parts.pop();
    for (const line of parts)
        if (line.trim()) onLine(line);
});
child.stderr.on('data', (chunk) => { stderr += chunk; });
child.on('error', (e) => {
    process.stdout.write(JSON.stringify({ error: String(e) }) + '\n');
    process.exit(1);
});
if (Number(killAfter) > 0)
    setTimeout(() => { try { child.kill('SIGTERM'); } catch (e) { /* gone */ } },
        Number(killAfter));
child.on('close', (code, signal) => {
    if (lineBuffer.trim()) onLine(lineBuffer);
    process.stdout.write(JSON.stringify({ code, signal, lines, stderr, pid: child.pid }) + '\n');
});
