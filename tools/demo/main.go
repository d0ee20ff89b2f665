// Command demo runs xfer's main job end to end on this machine: it starts a
// private Prosody (testserver), creates two accounts, and runs bin/xfer
// against it, showing what a user sees. `make demo` builds xfer and runs it.
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"xfer/internal/testserver"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	xfer, err := filepath.Abs("bin/xfer")
	if err != nil {
		return err
	}
	if _, err := os.Stat(xfer); err != nil {
		return fmt.Errorf("%s missing: run 'make demo', which builds it first", xfer)
	}
	fmt.Println("== starting a private Prosody with its SOCKS5 proxy (proxy65)")
	srv, err := testserver.Start(testserver.Options{})
	if err != nil {
		return err
	}
	defer srv.Stop()
	for _, u := range []string{"alice", "bob"} {
		if err := srv.Register(u, u+"-demo-pw"); err != nil {
			return err
		}
	}
	if err := srv.Befriend("alice", "bob"); err != nil {
		return err
	}
	fmt.Printf("   server %s, accounts alice@localhost and bob@localhost, CA %s\n\n", srv.Addr, srv.CAFile)

	env := func(user string) []string {
		return append(os.Environ(), "XFER_JID="+user+"@localhost/demo", "XFER_PASSWORD="+user+"-demo-pw", "XFER_SERVER="+srv.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	fmt.Println("== xfer probe-proxy (as alice)")
	probe := exec.CommandContext(ctx, xfer, "probe-proxy", "--tls-ca", srv.CAFile, "--payload", "16MiB")
	probe.Env, probe.Stdout, probe.Stderr = env("alice"), os.Stdout, os.Stderr
	if err := probe.Run(); err != nil {
		return fmt.Errorf("probe-proxy: %w", err)
	}
	return transfer(ctx, xfer, srv, env)
}

// transfer sends a file from alice to bob and checks it arrived intact.
func transfer(ctx context.Context, xfer string, srv *testserver.Server, env func(string) []string) error {
	dir, err := os.MkdirTemp("", "xfer-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "holiday-video.bin")
	f, err := os.Create(src)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, 64<<20); err != nil {
		return err
	}
	f.Close()
	inbox := filepath.Join(dir, "inbox")
	if err := os.Mkdir(inbox, 0o755); err != nil {
		return err
	}

	fmt.Println("\n== xfer receive --count 2 (as bob), then xfer send (as alice) of a 64 MiB file: directly, then through the proxy")
	recv := exec.CommandContext(ctx, xfer, "receive", "--tls-ca", srv.CAFile, "--dir", inbox, "--from", "alice@localhost", "--count", "2")
	recv.Env, recv.Stdout, recv.Stderr = env("bob"), os.Stdout, os.Stderr
	if err := recv.Start(); err != nil {
		return err
	}
	defer recv.Process.Kill()
	send := exec.CommandContext(ctx, xfer, "send", "--tls-ca", srv.CAFile, "--wait-online", "30s", src, "bob@localhost")
	send.Env, send.Stdout, send.Stderr = env("alice"), os.Stdout, os.Stderr
	if err := send.Run(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	proxied := exec.CommandContext(ctx, xfer, "send", "--tls-ca", srv.CAFile, "--no-direct", "--name", "holiday-video-again.bin", src, "bob@localhost")
	proxied.Env, proxied.Stdout, proxied.Stderr = env("alice"), os.Stdout, os.Stderr
	if err := proxied.Run(); err != nil {
		return fmt.Errorf("send through the proxy: %w", err)
	}
	if err := recv.Wait(); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	fmt.Printf("\n== done: %s\n", filepath.Join(inbox, "holiday-video.bin"))
	return nil
}
