# Minimal TAP helpers for the shell tests (sourced, not run).
# is CMD_OUTPUT EXPECTED NAME; ok COND NAME; finish at the end.
_n=0
_fail=0
ok() {   # ok "name" command...   passes when the command exits 0
    local name=$1; shift
    _n=$((_n + 1))
    if "$@" >/tmp/tap.$$ 2>&1; then
        echo "ok $_n - $name"
    else
        echo "not ok $_n - $name"
        sed 's/^/# /' /tmp/tap.$$ | head -n 40
        _fail=$((_fail + 1))
    fi
    rm -f /tmp/tap.$$
}
is() {   # is "got" "expected" "name"
    _n=$((_n + 1))
    if [ "$1" == "$2" ]; then
        echo "ok $_n - $3"
    else
        echo "not ok $_n - $3"
        printf '# got:      %s\n# expected: %s\n' "$1" "$2"
        _fail=$((_fail + 1))
    fi
}
finish() {
    echo "1..$_n"
    [ "$_fail" -eq 0 ]
}
LWLC=${LWLC:-${B:-build}/lwlc}
