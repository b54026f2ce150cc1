# Sourced by the peer scripts: `peers_venv "IMPORTS" PACKAGE...` makes sure the shared
# peers venv ($STREAMNMF_PEERS_VENV, default ~/.cache/streamnmf-peers-venv) can import the
# comma-separated IMPORTS, installing PACKAGEs when it cannot, and sets VENV.
peers_venv() {
  local imports=$1
  shift
  VENV=${STREAMNMF_PEERS_VENV:-$HOME/.cache/streamnmf-peers-venv}
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import $imports" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "$@"
  fi
}
