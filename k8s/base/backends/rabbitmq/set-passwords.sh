#!/bin/sh
# Give the broker users their passwords and create the administrator, on a running broker.
#
# definitions.json (loaded at boot) defines one user per agent with NO password (an empty hash
# cannot log in), so no secret is ever committed. This script, run on the broker's host (in the
# container), sets each user's password from the environment variable
# RABBITMQ_PASSWORD_<USER> (user name upper-cased: RABBITMQ_PASSWORD_RISK, RABBITMQ_PASSWORD_RISK_LIVE)
# - the same convention as `tradeswarm broker apply` - and, when RABBITMQ_ADMIN_USER and
# RABBITMQ_ADMIN_PASSWORD are set, the management UI's user; when RABBITMQ_MONITORING_USER /
# RABBITMQ_MONITORING_PASSWORD are set, a read-only monitoring user (KEDA reads queue depths with
# it). Passwords go through standard input, never the command line.
#
# The UI user watches, it does not act (docs/security.md): tag `monitoring` (every vhost, queue,
# connection and rate in the UI; no user, permission, policy or parameter changes, so it cannot grant
# itself more), no configure or write permission (it cannot publish anything, least of all an
# approved order or a control command, and cannot purge or delete a queue), read only on the
# dead-letter queues (to inspect them with "Get messages", requeueing). Administration is done with
# rabbitmqctl in the broker's container (`docker compose exec rabbitmq rabbitmqctl ...`).
set -eu

ctl() {
    rabbitmqctl -q "$@"
}

password_of() {
    # the value of RABBITMQ_PASSWORD_<USER>, empty when unset
    name="RABBITMQ_PASSWORD_$(printf '%s' "$1" | tr '[:lower:]-' '[:upper:]_')"
    printenv "$name" || true
}

users="$(ctl list_users --no-table-headers | cut -f1)"

upsert_user() {
    # upsert_user <name> <password>: create the user or change its password
    if printf '%s\n' "$users" | grep -qx "$1"; then
        printf '%s' "$2" | ctl change_password "$1" >/dev/null
    else
        printf '%s' "$2" | ctl add_user "$1" >/dev/null
    fi
}

set_users=0
for user in $users; do
    password="$(password_of "$user")"
    if [ -n "$password" ]; then
        printf '%s' "$password" | ctl change_password "$user" >/dev/null
        set_users=$((set_users + 1))
    fi
done
echo "set the passwords of $set_users broker user(s)"

vhosts="$(ctl list_vhosts --no-table-headers name)"

if [ -n "${RABBITMQ_ADMIN_USER:-}" ] && [ -n "${RABBITMQ_ADMIN_PASSWORD:-}" ]; then
    upsert_user "$RABBITMQ_ADMIN_USER" "$RABBITMQ_ADMIN_PASSWORD"
    ctl set_user_tags "$RABBITMQ_ADMIN_USER" monitoring >/dev/null
    for vhost in $vhosts; do
        # configure nothing, write nothing, read only the dead-letter queues
        ctl set_permissions -p "$vhost" "$RABBITMQ_ADMIN_USER" "^$" "^$" '\.dlq$' >/dev/null \
            || echo "warning: no permissions for $RABBITMQ_ADMIN_USER on vhost $vhost" >&2
        ctl set_topic_permissions -p "$vhost" "$RABBITMQ_ADMIN_USER" tradeswarm.events "^$" "^$" >/dev/null \
            || echo "warning: no topic permissions for $RABBITMQ_ADMIN_USER on vhost $vhost" >&2
    done
    echo "management UI user $RABBITMQ_ADMIN_USER ready (monitoring only: it cannot publish)"
fi

if [ -n "${RABBITMQ_MONITORING_USER:-}" ] && [ -n "${RABBITMQ_MONITORING_PASSWORD:-}" ]; then
    upsert_user "$RABBITMQ_MONITORING_USER" "$RABBITMQ_MONITORING_PASSWORD"
    ctl set_user_tags "$RABBITMQ_MONITORING_USER" monitoring >/dev/null
    for vhost in $vhosts; do
        # may configure, write and read nothing: the management API still lists queue depths
        ctl set_permissions -p "$vhost" "$RABBITMQ_MONITORING_USER" "^$" "^$" "^$" >/dev/null \
            || echo "warning: no permissions for $RABBITMQ_MONITORING_USER on vhost $vhost" >&2
    done
    echo "monitoring user $RABBITMQ_MONITORING_USER ready"
fi
