#!/bin/sh
# Give the broker users their passwords and create the administrator, on a running broker.
#
# definitions.json (loaded at boot) defines one user per agent with NO password (an empty hash
# cannot log in), so no secret is ever committed. This script, run on the broker's host (in the
# container), sets each user's password from the environment variable
# RABBITMQ_PASSWORD_<USER> (user name upper-cased: RABBITMQ_PASSWORD_RISK, RABBITMQ_PASSWORD_RISK_LIVE)
# - the same convention as `tradeswarm broker apply` - and, when RABBITMQ_ADMIN_USER and
# RABBITMQ_ADMIN_PASSWORD are set, an administrator for the management UI; when
# RABBITMQ_MONITORING_USER / RABBITMQ_MONITORING_PASSWORD are set, a read-only monitoring user
# (KEDA reads queue depths with it). Passwords go through standard input, never the command line.
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
    ctl set_user_tags "$RABBITMQ_ADMIN_USER" administrator >/dev/null
    for vhost in $vhosts; do
        ctl set_permissions -p "$vhost" "$RABBITMQ_ADMIN_USER" ".*" ".*" ".*" >/dev/null \
            || echo "warning: no permissions for $RABBITMQ_ADMIN_USER on vhost $vhost" >&2
    done
    echo "administrator $RABBITMQ_ADMIN_USER ready"
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
