#!/usr/bin/env bash
# Install the build dependencies, build clawvisor, start it on a demo home
# with one agent (the `command` provider, so no API key is needed), send it
# a message the way TinyClaw's channel clients do, and show the reply.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq meson ninja-build pkg-config libev-dev \
	    libjson-c-dev libbsd-dev >/dev/null
fi
[ -f build-demo/build.ninja ] || meson setup build-demo -Dtests=false >/dev/null
ninja -C build-demo >/dev/null
bin=$PWD/build-demo/clawvisor
home=${DEMO_HOME:-/tmp/clawvisor-demo}
mkdir -p "$home"
cat > "$home/settings.json" <<JSON
{
  "workspace": { "path": "$home/workspace" },
  "agents": {
    "echo": {
      "name": "Echo",
      "provider": "command",
      "command": ["/bin/sh", "-c", "printf 'Echo agent heard: %s' \"\$1\"", "sh", "{message}"]
    }
  },
  "sandbox": { "mode": "host", "timeout_seconds": 30 },
  "supervisor": { "workers": 2 }
}
JSON
"$bin" --home "$home" stop >/dev/null 2>&1 || true
sleep 0.3
"$bin" --home "$home" serve
for i in $(seq 50); do [ -S "$home/run/clawvisor.sock" ] && break; sleep 0.1; done
id="demo_$(date +%s%N)"
printf '{"channel":"telegram","sender":"demo","senderId":"1","message":"hello, clawvisor","timestamp":%s,"messageId":"%s"}\n' \
    "$(date +%s000)" "$id" > "$home/queue/incoming/.$id.tmp"
mv "$home/queue/incoming/.$id.tmp" "$home/queue/incoming/$id.json"
for i in $(seq 100); do
	reply=$(ls "$home/queue/outgoing/" | grep "_${id}_" || true)
	[ -n "$reply" ] && break
	sleep 0.05
done
echo "== reply: $home/queue/outgoing/$reply"
cat "$home/queue/outgoing/$reply"
echo "== clawvisor status"
"$bin" --home "$home" status
echo "== the daemon keeps running; stop it with: $bin --home $home stop"
