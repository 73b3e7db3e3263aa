#!/bin/sh
# Lab PKI of topology "default", made at deploy time: rendered by anycast-ctl, run by each
# backend's `exec:` before its TLS server starts. The first backend to take the lock makes a CA
# and every backend's certificate (its SANs: the TLS names of the VIPs it serves, its address);
# the others find them. The CA's key lives in memory (/dev/shm) and is deleted, so nothing more
# can be issued. /var/lib/anycast-ctl/pki is the lab's pki/ directory on the host (git-ignored); clients
# mount it read-only and verify backends against ca.pem. A redeploy reuses certificates while
# they are valid for another day, and remakes all of them otherwise.
set -eu
dir=/var/lib/anycast-ctl/pki
exec 9>"$dir/.lock"
flock 9
if [ -s "$dir/ca.pem" ] && openssl x509 -checkend 86400 -noout -in "$dir/ca.pem" >/dev/null \
  && [ -s "$dir/be1.pem" ] && [ -s "$dir/be1.key" ] \
  && [ -s "$dir/be2.pem" ] && [ -s "$dir/be2.key" ] \
  ; then
  exit 0
fi
tmp=$(mktemp -d /dev/shm/anycast-ctl-pki.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
rm -f "$dir/ca.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -subj "/O=anycast-ctl lab/CN=anycast-ctl lab CA default" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
issue() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tmp/$1.key" -out "$tmp/$1.csr" -subj "/O=anycast-ctl lab/CN=$1" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nsubjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2" >"$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -days 2 \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$tmp/$1.ext" -out "$dir/$1.pem" 2>/dev/null
  install -m 600 "$tmp/$1.key" "$dir/$1.key"
}
issue be1 "DNS:web.anycast.test,IP:100.64.255.5"
issue be2 "DNS:web.anycast.test,IP:100.64.255.6"
# Last: a CA certificate in place says every certificate beside it was issued by it.
install -m 644 "$tmp/ca.pem" "$dir/ca.pem"
