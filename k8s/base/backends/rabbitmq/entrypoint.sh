#!/bin/sh
# Container entrypoint of the broker: start RabbitMQ (which loads definitions.json), then set the
# users' passwords (set-passwords.sh), then mark the broker ready for the healthcheck. Signals are
# forwarded so `docker compose stop` / a pod termination shuts RabbitMQ down cleanly.
set -eu

READY_FLAG=/tmp/tradeswarm-broker-ready
rm -f "$READY_FLAG"

docker-entrypoint.sh rabbitmq-server &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server"; exit $?' TERM INT

until rabbitmq-diagnostics -q check_running >/dev/null 2>&1; do
    if ! kill -0 "$server" 2>/dev/null; then
        wait "$server"
        exit $?
    fi
    sleep 2
done

sh /etc/rabbitmq/set-passwords.sh
touch "$READY_FLAG"

wait "$server"
