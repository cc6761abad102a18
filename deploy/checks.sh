# checks.sh - sourced by the deploy/ test scripts: count checks and close with the line CI reads.
passed=0 failed=0
check() { # name, command...: runs the command, counts and prints the result
    local name=$1; shift
    if "$@"; then passed=$((passed + 1)); echo "ok - $name"
    else failed=$((failed + 1)); echo "not ok - $name"; fi
}
finish() { # prints 'N passed, N failed' and exits non-zero if anything failed
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}
