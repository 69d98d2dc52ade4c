#!/usr/bin/env bash
# Stand-in for `tessera serve`, ONLY to validate the mechanics of `tessera-bench restart` before
# Tessera exists (spawn with the planned CLI, health wait, preload, SIGTERM, kill -9, read-back):
# a single nginx process serving the data dir via static GET + WebDAV PUT. The "reopen" times it
# yields are nginx's start-up time, not a store's, and say nothing about Tessera.
set -euo pipefail
[ "${1:-}" = serve ] || { echo "usage: serve --listen A --data D ..." >&2; exit 2; }
shift
while [ $# -gt 0 ]; do
  case $1 in --listen) LISTEN=$2;; --data) DATA=$2;; esac; shift 2
done
mkdir -p "$DATA/root" "$DATA/tmp"
echo ok > "$DATA/root/healthz"
cat > "$DATA/nginx.conf" <<CONF
daemon off; master_process off; user root; worker_processes 1;
pid $DATA/nginx.pid; error_log $DATA/error.log warn;
events { worker_connections 4096; }
http { access_log off; sendfile on; keepalive_requests 100000000; client_body_temp_path $DATA/tmp;
  proxy_temp_path $DATA/tmp; fastcgi_temp_path $DATA/tmp; uwsgi_temp_path $DATA/tmp; scgi_temp_path $DATA/tmp;
  server { listen $LISTEN; root $DATA/root; location / { dav_methods PUT; create_full_put_path on; } } }
CONF
exec /usr/sbin/nginx -p "$DATA" -c "$DATA/nginx.conf"
