"""
A request in absolute form (`POST http://127.0.0.1:18899/v1/messages`),
as a client that goes through HTTP_PROXY and ignores NO_PROXY sends it to
the bridge, reaches the provider as the same POST with its path and body
and the key swapped in (SPEC §9, issue 15), in docker mode on Podman.

Why a test of its own: busybox wget through the proxy got a 404 that the
proxy was suspected of. The cause is busybox 1.35's wget, which sends GET
whatever --post-data says when it uses a proxy (`GET http://host/path`,
its body and Content-Length kept); the proxy relayed that GET faithfully
and the stand-in answers a GET with 404. Here the request is written by
hand (busybox nc) so that the method is the one meant.
"""
import json
import uuid

from containers import engine  # noqa: F401 (fixture)
from test_egress_e2e import StandIn, make_ca
from test_egress_podman import image

CLAUDE = r"""#!/bin/sh
# A fake claude: its message, POSTed in absolute form to the bridge (the
# proxy address in $HTTP_PROXY) with the key it holds; the raw reply out.
for a; do msg=$a; done
body="{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"$msg\"}]}"
len=$(printf %s "$body" | wc -c)
hp=${HTTP_PROXY#http://}
# nc's input stays open (a FIFO we hold) until the reply is in: a
# client's half-close ends its provider request (DECISIONS 252); the
# stand-in closes after its reply, and so nc ends.
mkfifo /tmp/nc-in
nc "${hp%%:*}" "${hp##*:}" < /tmp/nc-in > "$PWD/reply.txt" &
nc=$!
exec 3> /tmp/nc-in
printf 'POST %s/v1/messages HTTP/1.1\r\nHost: %s\r\nx-api-key: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s' \
    "$ANTHROPIC_BASE_URL" "$hp" "$ANTHROPIC_API_KEY" "$len" "$body" >&3
wait $nc
exec 3>&-
tr -d '\r' < "$PWD/reply.txt"
"""


def test_absolute_form_post_reaches_the_provider(homes, engine,  # noqa: F811
                                                 tmp_path):
    ca, cert, key = make_ca(str(tmp_path))
    img = image(engine, CLAUDE)
    h = homes({"sandbox": {
        "mode": "docker", "max_attempts": 1, "timeout_seconds": 120,
        "runtime_pass_env": ["CLAWVISOR_TEST_TAG"],
        "docker": {"runtime_command": "podman", "image": img,
                   "network": "default", "memory": "256m", "user": "auto"},
        "egress": {"mode": "proxy", "ca_file": ca,
                   "providers": {"anthropic": {"url": "PLACEHOLDER"}}}},
        "agents": {"alpha": {"name": "A", "provider": "anthropic"}},
        "supervisor": {"workers": 1}}, start=False)
    wd = h.workdir("alpha")
    wd.mkdir(parents=True, exist_ok=True)
    api = StandIn(cert, key, str(wd))
    try:
        s = h.settings
        s["sandbox"]["egress"]["providers"]["anthropic"]["url"] = \
            f"https://127.0.0.1:{api.port}"
        h.write_settings(s)
        secret = f"sk-ant-api03-cvtest-{uuid.uuid4().hex}"
        h.start(env={"ANTHROPIC_API_KEY": secret, "DOCKER_HOST": "",
                     "CONTAINERS_CONF": str(engine.conf)})
        mid = h.drop("hello absolute form", agent="alpha")
        o = h.wait_outcome(mid, timeout=120)
        assert o[0] == "response", (o, h.log()[-3000:])
        reply = o[1]["message"]
        assert reply.startswith("HTTP/1.1 200"), reply
        head, _, body = reply.partition("\n\n")
        assert json.loads(body)["content"][0]["text"] == \
            "echo:hello absolute form", reply
        # One request, a POST (the stand-in's do_POST recorded it with its
        # JSON body), on the origin-form path, with the key.
        assert len(api.seen) == 1, api.seen
        path, headers, body = api.seen[0]
        assert path == "/v1/messages"
        assert body["messages"][0]["content"] == "hello absolute form"
        lower = {k.lower(): v for k, v in headers.items()}
        assert lower["x-api-key"] == secret
        assert lower["host"] == f"127.0.0.1:{api.port}"
        assert "cvtok-" not in json.dumps(headers)
        assert engine.names(h.path) == []
    finally:
        api.close()
        engine.run("rmi", "-f", img, check=False)
