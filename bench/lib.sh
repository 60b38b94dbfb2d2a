# Shared by bench/daemon.sh, bench/flood.sh and bench/soak.sh (sourced after `set -euo pipefail` and
# `cd` to the project root): the processes they start, free ports, waiting for HTTP, and the git remote
# they write to — `git http-backend` as a lighttpd CGI behind bcrypt Basic auth, as
# tests/it/support/git_http.rs serves it.

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # URL: until it answers (any status)
  for _ in $(seq 200); do curl -sS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "$1 never answered" >&2
  return 1
}

# GIT_ROOT PASSWORD LOG: serves GIT_ROOT/repos at http://127.0.0.1:$GIT_PORT/git/ for user `bot`,
# lighttpd's output to LOG; sets GIT_PORT and GIT_URL.
start_git_http() {
  local root="$1" password="$2" log="$3"
  mkdir -p "$root/repos" "$root/www" "$root/tmp"
  htpasswd -Bbc "$root/htpasswd" bot "$password" 2>/dev/null
  GIT_PORT="$(free_port)"
  cat >"$root/lighttpd.conf" <<CONFIG
server.modules = ( "mod_alias", "mod_setenv", "mod_auth", "mod_authn_file", "mod_cgi" )
server.document-root = "$root/www"
server.bind = "127.0.0.1"
server.port = $GIT_PORT
server.errorlog = "$root/lighttpd-error.log"
server.upload-dirs = ( "$root/tmp" )
auth.backend = "htpasswd"
auth.backend.htpasswd.userfile = "$root/htpasswd"
alias.url = ( "/git" => "$(git --exec-path)/git-http-backend" )
\$HTTP["url"] =~ "^/git/" {
  cgi.assign = ( "" => "" )
  setenv.add-environment = ( "GIT_PROJECT_ROOT" => "$root/repos", "GIT_HTTP_EXPORT_ALL" => "1" )
  auth.require = ( "" => ( "method" => "basic", "realm" => "git", "require" => "valid-user" ) )
}
CONFIG
  lighttpd -D -f "$root/lighttpd.conf" >"$log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$GIT_PORT/git/"
  GIT_URL="http://127.0.0.1:$GIT_PORT/git"
}
