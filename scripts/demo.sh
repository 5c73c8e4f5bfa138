#!/usr/bin/env bash
# The main job: install what is missing, make sure a local mosquitto runs, then run the agent on
# its default profile (it replays a bundled test-subject recording in real time) while a subscriber
# shows the predictions arriving on MQTT. Ctrl-C stops everything.
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"

PROFILE="${1:-$ROOT/profiles/default.toml}"

need_python
apt_install mosquitto mosquitto-clients
make_venv ""

BROKER_PID=""
SUB_PID=""
CONF_DIR=""
cleanup() {
    # let the subscriber show the agent's goodbye (final metrics, retained "offline") first
    [ -n "$SUB_PID" ] && sleep 0.5
    [ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null || true
    [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    [ -n "$CONF_DIR" ] && rm -rf "$CONF_DIR"
    return 0
}
trap cleanup EXIT

if ! port_open localhost 1883; then
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        say "starting the mosquitto service"
        as_root systemctl start mosquitto || true
    fi
fi
if ! port_open localhost 1883; then
    exe="$(mosquitto_exe)" || die "mosquitto is not installed"
    CONF_DIR="$(mktemp -d)"
    conf="$CONF_DIR/mosquitto.conf"
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n' >"$conf"
    say "starting mosquitto on 127.0.0.1:1883 for this demo"
    # a session of its own: Ctrl-C reaches the agent, which says goodbye (retained "offline")
    # to a broker still running; cleanup stops the broker after that
    setsid "$exe" -c "$conf" >/dev/null 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 50); do port_open localhost 1883 && break; sleep 0.1; done
    port_open localhost 1883 || die "mosquitto did not start on localhost:1883"
fi

say "subscribing: mosquitto_sub -h localhost -t 'har/#' -v"
# a session of its own too, so Ctrl-C does not stop it before the agent's goodbye arrives
setsid mosquitto_sub -h localhost -t 'har/#' -v &
SUB_PID=$!

say "running: har-agent run --profile $PROFILE   (Ctrl-C to stop)"
"$VENV/bin/har-agent" run --profile "$PROFILE"
