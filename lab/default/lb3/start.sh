#!/bin/sh
# LB node lb3: start HAProxy, then ExaBGP, which runs the anycast-ctl agent as its API process.
# Rendered by anycast-ctl from topology "default"; edits are overwritten.
# containerlab runs this last in `exec:`, after the node's addresses and routes are in place.
# Both run in the foreground of their own session (no daemon mode); logs go to /var/log/anycast-ctl/.
set -eu
mkdir -p /run/anycast-ctl/lb3 /var/log/anycast-ctl
setsid haproxy -Ws -f /etc/anycast-ctl/haproxy.cfg </dev/null >>/var/log/anycast-ctl/haproxy.log 2>&1 &
setsid exabgp --env-file /etc/anycast-ctl/exabgp.env server /etc/anycast-ctl/exabgp.conf </dev/null >>/var/log/anycast-ctl/exabgp.log 2>&1 &
