package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
)

// profileEnv names a file prefix for a CPU profile of the whole run, for
// developers measuring a transfer (the bench's processes inherit it):
// PREFIX.SUBCOMMAND.PID.pprof, read with `go tool pprof bin/xfer FILE`.
const profileEnv = "XFER_CPUPROFILE"

// startProfile starts the CPU profile that profileEnv asks for, and
// returns what stops it (nothing to stop when unset or on an error, said
// on stderr: a profile is never a reason to fail a transfer).
func startProfile(args []string) (stop func()) {
	prefix := os.Getenv(profileEnv)
	if prefix == "" {
		return func() {}
	}
	sub := "xfer"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub = args[0]
	}
	f, err := os.Create(fmt.Sprintf("%s.%s.%d.pprof", prefix, sub, os.Getpid()))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "xfer: %s: %v\n", profileEnv, err)
		if f != nil {
			f.Close()
		}
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
