#!/usr/bin/env bash
# Starts Debian nginx as a WebDAV stand-in for a Bazel HTTP remote cache (GET, PUT, 404 on miss):
#   tests/bazel/nginx-webdav.sh DIR [PORT]
# DIR holds the config, logs and the cache root (DIR/root). Without PORT a free loopback port is
# picked. Runs in the background; prints "port=P pid=N" on success. Stop it with `kill N`.
set -euo pipefail
dir="$(mkdir -p "$1" && cd "$1" && pwd)"
port="${2:-}"
mkdir -p "$dir/root" "$dir/tmp"

pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for attempt in 1 2 3 4 5; do
  p="${port:-$(pick_port)}"
  cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 512; }
http {
  access_log $dir/access.log;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  server {
    listen 127.0.0.1:$p;
    root $dir/root;
    client_max_body_size 0;
    location / {
      dav_methods PUT;
      create_full_put_path on;
    }
  }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" </dev/null >>"$dir/stdout.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "port=$p pid=$pid"; exit 0; fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ -z "$port" ] || break
done
echo "nginx-webdav.sh: nginx did not start; tail of $dir/error.log:" >&2
tail -n 20 "$dir/error.log" >&2
exit 1
