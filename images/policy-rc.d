#!/bin/sh
# Installed as /usr/sbin/policy-rc.d in the base image: a package's postinst must not start
# its service in a container build (exit 101 = "action forbidden" for invoke-rc.d).
exit 101
