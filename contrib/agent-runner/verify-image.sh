#!/bin/sh
# verify-image.sh: build the agent-runner image and check that it holds what
# clawvisor needs. Not part of CI: it needs Debian's mirrors and the npm
# registry, and takes minutes.
#
# Without Docker Hub, it first builds a stand-in for
# docker.io/library/node:22-bookworm-slim: a minimal Debian bookworm root
# file system (mmdebstrap, with the slim image's dpkg and apt settings),
# the official Node 22 binary (npm package node-linux-ARCH, a repackaging
# of the nodejs.org build) and npm 10 (npm package npm), imported as
# localhost/clawvisor-node-base:22-bookworm. Then it builds
# contrib/Dockerfile.agent-runner with --build-arg BASE=that, and checks:
#
#   node       Node >= 22 in the image (@anthropic-ai/claude-code wants it)
#   claude     `claude --version` prints a version
#   codex      `codex --version` prints a version
#   user       the image's default user is not root
#   home       HOME is under /workspace
#   entrypoint the image has no entrypoint (clawvisor passes the command)
#   readonly   both CLIs run with clawvisor's flags: read-only root, no
#              capabilities, no network, a non-root --user, a workspace
#              mount, HOME from an env-file
#   clean      no apt lists or caches, no npm cache, empty /tmp
#   size       the image is at most --max-size-mb
#   doctor     `clawvisor sandbox doctor` passes for a home in docker mode
#              with this image and an anthropic and an openai agent
#
# Prints one line per check and exits 1 if any failed (2: usage or
# missing tools). Must run as root (mmdebstrap, a rootful engine).
#
# Usage: contrib/agent-runner/verify-image.sh [options]
#   --runtime CMD       podman (default) or docker
#   --image NAME        the image to build (default tinyclaw/agent-runner:latest)
#   --base IMAGE        use this base instead of building the stand-in
#                       (e.g. docker.io/library/node:22-bookworm-slim)
#   --node-version V    Node for the stand-in (default: the newest 22.x)
#   --extra-ca FILE     a CA certificate (PEM) the build must trust, for a
#                       TLS-intercepting proxy in front of the npm registry;
#                       it is put into the stand-in base (and so the image)
#   --build-arg A=B     passed to the build (CLAUDE_CODE_VERSION=…, …)
#   --clawvisor PATH    the clawvisor binary for the doctor check (default:
#                       `clawvisor` in PATH, else build*/clawvisor here)
#   --no-doctor         skip the doctor check
#   --max-size-mb N     the size budget (default 1500)
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian),
# DEBIAN_SECURITY (default http://deb.debian.org/debian-security), and
# whatever the engine reads (CONTAINERS_CONF, DOCKER_HOST, …).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
# In the source tree (contrib/agent-runner/) or installed beside the
# Dockerfile (share/clawvisor/agent-runner/).
DOCKERFILE=$HERE/../Dockerfile.agent-runner
DOCKERFILE=$(cd "$(dirname "$DOCKERFILE")" && pwd)/Dockerfile.agent-runner

RUNTIME=podman
IMAGE=tinyclaw/agent-runner:latest
BASE=
NODE_VERSION=
EXTRA_CA=
BUILD_ARGS=
CLAWVISOR=
DOCTOR=1
MAX_SIZE_MB=1500
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY=${DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
BASE_TAG=localhost/clawvisor-node-base:22-bookworm
NPM_VERSION=10

usage() {
	sed -n '/^# Usage:/,/^# Environment/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--runtime) RUNTIME=${2:?}; shift ;;
	--image) IMAGE=${2:?}; shift ;;
	--base) BASE=${2:?}; shift ;;
	--node-version) NODE_VERSION=${2:?}; shift ;;
	--extra-ca) EXTRA_CA=${2:?}; shift ;;
	--build-arg) BUILD_ARGS="$BUILD_ARGS --build-arg ${2:?}"; shift ;;
	--clawvisor) CLAWVISOR=${2:?}; shift ;;
	--no-doctor) DOCTOR=0 ;;
	--max-size-mb) MAX_SIZE_MB=${2:?}; shift ;;
	-h|--help) usage ;;
	*) echo "verify-image: unknown option $1" >&2; usage ;;
	esac
	shift
done

FAILED=0
ok() { printf 'ok    %-10s %s\n' "$1" "$2"; }
fail() { printf 'FAIL  %-10s %s\n' "$1" "$2"; FAILED=$((FAILED + 1)); }
die() { echo "verify-image: $*" >&2; exit 2; }
step() { printf '== %s\n' "$*"; }

command -v "$RUNTIME" >/dev/null || die "$RUNTIME not found"
[ -r "$DOCKERFILE" ] || die "$DOCKERFILE not found"
if [ -z "$BASE" ]; then
	[ "$(id -u)" = 0 ] || die "building the stand-in base needs root (mmdebstrap); or pass --base"
	command -v mmdebstrap >/dev/null || die "mmdebstrap not found (apt-get install mmdebstrap)"
	command -v npm >/dev/null || die "npm not found (apt-get install npm): it fetches Node and npm"
fi
[ -z "$EXTRA_CA" ] || [ -r "$EXTRA_CA" ] || die "$EXTRA_CA: not readable"
if [ "$DOCTOR" = 1 ] && [ -z "$CLAWVISOR" ]; then
	CLAWVISOR=$(command -v clawvisor || true)
	if [ -z "$CLAWVISOR" ]; then
		for c in "$HERE"/../../build*/clawvisor; do
			[ -x "$c" ] && { CLAWVISOR=$c; break; }
		done
	fi
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/verify-image.XXXXXX") || exit 2
cleanup() {
	"$RUNTIME" rm -f verify-image-$$ >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- the stand-in base ----------------------------------------------------

if [ -z "$BASE" ]; then
	case $(uname -m) in
	x86_64) ARCH=x64 ;;
	aarch64) ARCH=arm64 ;;
	*) die "no Node package for $(uname -m)" ;;
	esac
	if [ -z "$NODE_VERSION" ]; then
		NODE_VERSION=$(npm view "node-linux-$ARCH@22" version --json \
		    2>/dev/null | tr -d '[]" ' | tr ',' '\n' |
		    grep -E '^22\.[0-9]+\.[0-9]+$' | sort -V | tail -n 1)
		[ -n "$NODE_VERSION" ] || die "cannot find node-linux-$ARCH@22 in the npm registry"
	fi
	step "stand-in base $BASE_TAG: Debian bookworm, Node $NODE_VERSION, npm $NPM_VERSION"
	mkdir -p "$TMP/pack"
	(cd "$TMP/pack" && npm pack --silent "node-linux-$ARCH@$NODE_VERSION" \
	    "npm@$NPM_VERSION") >"$TMP/npm-pack.log" 2>&1 ||
	    { cat "$TMP/npm-pack.log" >&2; die "npm pack failed"; }
	# The slim image's settings (debuerreotype's): no documentation, no
	# translations, no apt caches; merged /usr without the usrmerge package
	# (which would pull in perl).
	if ! mmdebstrap --variant=minbase --format=directory \
	    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
	    --dpkgopt='path-exclude=/usr/share/doc/*' \
	    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
	    --dpkgopt='path-exclude=/usr/share/man/*' \
	    --dpkgopt='path-exclude=/usr/share/info/*' \
	    --dpkgopt='path-exclude=/usr/share/locale/*' \
	    --dpkgopt='path-exclude=/usr/share/lintian/*' \
	    --aptopt='Acquire::Languages "none"' \
	    --aptopt='Dir::Cache::pkgcache ""' \
	    --aptopt='Dir::Cache::srcpkgcache ""' \
	    --aptopt='DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }' \
	    --aptopt='APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }' \
	    bookworm "$TMP/rootfs" \
	    "deb $DEBIAN_MIRROR bookworm main" \
	    "deb $DEBIAN_MIRROR bookworm-updates main" \
	    "deb $DEBIAN_SECURITY bookworm-security main" \
	    >"$TMP/mmdebstrap.log" 2>&1; then
		tail -n 20 "$TMP/mmdebstrap.log" >&2
		die "mmdebstrap failed"
	fi
	R=$TMP/rootfs
	mkdir -p "$TMP/node" "$R/usr/local/lib/node_modules/npm"
	tar -xzf "$TMP/pack/node-linux-$ARCH-$NODE_VERSION.tgz" -C "$TMP/node" \
	    --no-same-owner package/bin/node || die "no bin/node in the Node package"
	install -m 0755 "$TMP/node/package/bin/node" "$R/usr/local/bin/node" ||
	    die "cannot install node"
	tar -xzf "$TMP"/pack/npm-"$NPM_VERSION".*.tgz --strip-components=1 \
	    --no-same-owner -C "$R/usr/local/lib/node_modules/npm" ||
	    die "cannot unpack npm"
	ln -s ../lib/node_modules/npm/bin/npm-cli.js "$R/usr/local/bin/npm"
	ln -s ../lib/node_modules/npm/bin/npx-cli.js "$R/usr/local/bin/npx"
	# As the node image's: a command that is not one runs under node.
	cat >"$R/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
EOF
	chmod 0755 "$R/usr/local/bin/docker-entrypoint.sh"
	set -- --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	    --change "ENV NODE_VERSION=$NODE_VERSION" \
	    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
	    --change 'CMD ["node"]'
	if [ -n "$EXTRA_CA" ]; then
		# Debian's place for local CAs (update-ca-certificates adds it to
		# the system bundle when the Dockerfile installs ca-certificates),
		# and Node's variable, since Node does not read the system store.
		mkdir -p "$R/usr/local/share/ca-certificates"
		install -m 0644 "$EXTRA_CA" \
		    "$R/usr/local/share/ca-certificates/verify-image-extra-ca.crt" ||
		    die "cannot copy $EXTRA_CA"
		set -- "$@" --change \
		    'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/verify-image-extra-ca.crt'
	fi
	chroot "$R" /usr/local/bin/node --version >/dev/null ||
	    die "the Node binary does not run in the Debian root file system"
	tar -C "$R" --numeric-owner -cf - . |
	    "$RUNTIME" import "$@" - "$BASE_TAG" >"$TMP/import.log" 2>&1 ||
	    { cat "$TMP/import.log" >&2; die "$RUNTIME import failed"; }
	rm -rf "$R" "$TMP/node" "$TMP/pack"
	BASE=$BASE_TAG
fi

# -- the image ------------------------------------------------------------

step "$RUNTIME build --build-arg BASE=$BASE -t $IMAGE -f $DOCKERFILE"
# shellcheck disable=SC2086 # BUILD_ARGS is a list of words
if ! "$RUNTIME" build --build-arg "BASE=$BASE" $BUILD_ARGS -t "$IMAGE" \
    -f "$DOCKERFILE" "$(dirname "$DOCKERFILE")" >"$TMP/build.log" 2>&1; then
	tail -n 30 "$TMP/build.log"
	fail build "$RUNTIME build failed"
	echo "1 check(s) failed"
	exit 1
fi
ok build "$IMAGE from $BASE"

# -- the checks -----------------------------------------------------------

step "checks"
run() { "$RUNTIME" run --rm --network none "$IMAGE" "$@" 2>&1; }

v=$(run node --version)
major=$(printf '%s' "$v" | sed -n 's/^v\([0-9][0-9]*\)\..*/\1/p')
if [ -n "$major" ] && [ "$major" -ge 22 ]; then
	ok node "$v"
else
	fail node "node --version: $v (want >= 22)"
fi

v=$(run claude --version)
if printf '%s' "$v" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+ \(Claude Code\)'; then
	ok claude "$v"
else
	fail claude "claude --version: $v"
fi

v=$(run codex --version)
if printf '%s' "$v" | grep -Eq '^codex-cli [0-9]+\.[0-9]+'; then
	ok codex "$v"
else
	fail codex "codex --version: $v"
fi

v=$(run id -u)
if [ -n "$v" ] && [ "$v" != 0 ] && [ -z "$(printf '%s' "$v" | tr -d 0-9)" ]; then
	ok user "uid $v ($(run id -un)) by default"
else
	fail user "id -u: $v"
fi

v=$(run sh -c 'printf %s "$HOME"')
case $v in
/workspace/?*) ok home "HOME=$v" ;;
*) fail home "HOME=$v, not under /workspace" ;;
esac

v=$("$RUNTIME" image inspect --format '{{json .Config.Entrypoint}}' "$IMAGE" 2>&1)
case $v in
null|'[]') ok entrypoint "none (CMD $("$RUNTIME" image inspect --format '{{json .Config.Cmd}}' "$IMAGE"))" ;;
*) fail entrypoint "$v" ;;
esac

# As clawvisor runs it (docs/SANDBOX.md), with a workspace of uid 10001.
mkdir -p "$TMP/ws"
chown 10001:10001 "$TMP/ws"
printf 'HOME=/workspace/.tinyclaw-home\n' >"$TMP/run.env"
# shellcheck disable=SC2016 # $HOME is the container's
v=$("$RUNTIME" run --rm --name verify-image-$$ --workdir /workspace \
    --network none --memory 2g --cpus 1.0 --pids-limit 256 \
    --security-opt no-new-privileges --read-only --cap-drop ALL \
    --tmpfs /tmp:rw,noexec,nosuid,size=256m --user 10001:10001 \
    --mount "type=bind,src=$TMP/ws,dst=/workspace" --env-file "$TMP/run.env" \
    "$IMAGE" sh -c 'claude --version && codex --version && mkdir -p "$HOME" && test -w "$HOME" && echo home-ok' 2>&1)
case $v in
*home-ok) ok readonly "claude and codex run read-only as 10001:10001, HOME writable" ;;
*) fail readonly "$(printf '%s' "$v" | tail -n 3 | tr '\n' ' ')" ;;
esac

v=$(run sh -c 'ls -A /var/lib/apt/lists /tmp; ls /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /root/.npm 2>/dev/null' | grep -v '^/var/lib/apt/lists:$\|^/tmp:$\|^$\|^lock$\|^partial$\|^auxfiles$')
if [ -z "$v" ]; then
	ok clean "no apt lists or caches, no npm cache, empty /tmp"
else
	fail clean "left behind: $(printf '%s' "$v" | tr '\n' ' ')"
fi

bytes=$("$RUNTIME" image inspect --format '{{.Size}}' "$IMAGE")
mb=$((bytes / 1000000))
clis=$(run sh -c 'du -sm /usr/local/lib/node_modules/@anthropic-ai /usr/local/lib/node_modules/@openai' | awk '{ s += $1 } END { print s }')
basemb=$(($("$RUNTIME" image inspect --format '{{.Size}}' "$BASE") / 1000000))
if [ "$mb" -le "$MAX_SIZE_MB" ]; then
	ok size "$mb MB (base $basemb MB, the two CLIs ${clis} MiB; budget $MAX_SIZE_MB MB)"
else
	fail size "$mb MB, over the budget of $MAX_SIZE_MB MB (base $basemb MB, the two CLIs ${clis} MiB)"
fi

if [ "$DOCTOR" = 1 ]; then
	if [ -z "$CLAWVISOR" ] || [ ! -x "$CLAWVISOR" ]; then
		fail doctor "no clawvisor binary (build it, pass --clawvisor PATH, or --no-doctor)"
	else
		H=$TMP/home
		mkdir -p "$H" "$TMP/dws"
		cat >"$H/settings.json" <<EOF
{
  "workspace": {"path": "$TMP/dws"},
  "agents": {
    "claude": {"name": "Claude", "provider": "anthropic"},
    "codex": {"name": "Codex", "provider": "openai"}
  },
  "sandbox": {
    "mode": "docker",
    "docker": {"runtime_command": "$RUNTIME", "image": "$IMAGE",
               "user": "10001:10001"}
  }
}
EOF
		out=$(ANTHROPIC_API_KEY=sk-ant-verify-image OPENAI_API_KEY=sk-verify-image \
		    "$CLAWVISOR" --home "$H" sandbox doctor 2>&1)
		r=$?
		printf '%s\n' "$out" | sed 's/^/      | /'
		if [ $r = 0 ] && printf '%s\n' "$out" | grep -q '^ok  *clis '; then
			ok doctor "clawvisor sandbox doctor passes ($CLAWVISOR)"
		else
			fail doctor "clawvisor sandbox doctor exit $r"
		fi
	fi
fi

echo "$FAILED check(s) failed"
[ "$FAILED" = 0 ]
