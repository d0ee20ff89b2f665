package interop

import (
	"context"
	"os"
	"testing"
	"time"

	"xfer/internal/libervia"
	"xfer/internal/testserver"
	"xfer/internal/transfer"
)

// The matrix's Libervia columns: one Libervia 0.9 backend per server
// (account "libervia"), the independent Jingle File Transfer peer; it
// speaks SI too.

const lvUser = "libervia"

// startLibervia starts one Libervia backend per server, in parallel (each
// takes seconds to start).
func startLibervia(t *testing.T, servers []*matrixServer) {
	t.Helper()
	if !libervia.Installed() {
		if os.Getenv("CI") != "" {
			t.Fatalf("libervia is not installed: %s", libervia.InstallCommand)
		}
		t.Skipf("libervia is not installed: %s", libervia.InstallCommand)
	}
	errs := make(chan error, len(servers))
	for _, ms := range servers {
		if err := ms.srv.Register(lvUser, password(lvUser)); err != nil {
			t.Fatal(err)
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var err error
			ms.libervia, err = libervia.StartPeer(ctx, ms.srv, lvUser, password(lvUser), libervia.Options{})
			errs <- err
		}()
	}
	for range servers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, ms := range servers {
		if ms.libervia != nil {
			t.Cleanup(ms.libervia.Stop)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// liberviaRecv is how Libervia receives a cell: for the proxy rows it
// offers no candidate of its own, so the bytes go through xfer's proxy
// candidate.
func liberviaRecv(method string) libervia.RecvOptions {
	switch method {
	case methodProxy, methodJingleProxy:
		return libervia.RecvOptions{S5B: "none"}
	}
	return libervia.RecvOptions{}
}

// liberviaSend is how Libervia sends a cell. Libervia's own proxy
// activation (XEP-0260) is broken in 0.9 (it falls back to IBB); the
// driver's fix is used so that the proxy row measures the proxy.
func liberviaSend(method string) libervia.SendOptions {
	switch method {
	case methodDirect:
		return libervia.SendOptions{Method: "si", SIMethods: "s5b", S5B: "direct"}
	case methodProxy:
		return libervia.SendOptions{Method: "si", SIMethods: "s5b", S5B: "proxy"}
	case methodIBB:
		return libervia.SendOptions{Method: "si", SIMethods: "ibb"}
	case methodJingleDirect:
		return libervia.SendOptions{Method: "jingle", S5B: "direct"}
	case methodJingleProxy:
		return libervia.SendOptions{Method: "jingle", S5B: "proxy", FixProxyActivate: true}
	}
	return libervia.SendOptions{Method: "jingle", Transport: "ibb"}
}

func xferToLibervia(ctx context.Context, t *testing.T, ms *matrixServer, method, src, sum string) string {
	wantMethod, wantVia := wantVia(ms, method)
	lv := ms.libervia
	r, err := lv.Receive(ctx, t.TempDir(), bareOn(ms, xferUser), liberviaRecv(method))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	xs := loginOn(t, ms, xferUser)
	mark := lv.LogMark()
	res, err := (&transfer.Sender{S: xs, Opts: sendOptions(method)}).Send(ctx, lv.JID(), src)
	if err != nil {
		t.Fatalf("xfer send: %v\n%s\n%s", err, r.Output(), lv.StanzasSince(mark))
	}
	if res.Method != wantMethod || !sameVia(res.Via, wantVia) || res.Fallback != "" {
		t.Fatalf("sender: %s via %q (fallback %q), want %s via %q", res.Method, res.Via, res.Fallback, wantMethod, wantVia)
	}
	got, err := r.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !got.OK || got.Size != matrixSize || got.SHA256 != sha256Hex(t, src) || got.HashVerified != isJingle(method) {
		t.Fatalf("Libervia received %+v (hash verified %v, want %v)", got, got.HashVerified, isJingle(method))
	}
	checkStored(t, got.Path, src, sum)
	return describe(res.Method, res.Via)
}

func liberviaToXfer(ctx context.Context, t *testing.T, ms *matrixServer, method, src, sum string) string {
	wantMethod, wantVia := wantVia(ms, method)
	lv := ms.libervia
	xs := loginOn(t, ms, xferUser)
	ro := transfer.ReceiveOptions{Dir: t.TempDir(), Allow: []string{lv.Bare()}}
	ro.S5B.HostTimeout = 5 * time.Second
	r, err := transfer.NewReceiver(ctx, xs, ro, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mark := lv.LogMark()
	if _, err := lv.Send(ctx, src, xs.JID(), liberviaSend(method)); err != nil {
		t.Fatalf("Libervia send: %v\n%s", err, lv.StanzasSince(mark))
	}
	got, err := r.Next(ctx)
	if err != nil {
		t.Fatalf("xfer receiver: %v\n%s", err, lv.StanzasSince(mark))
	}
	if got.Method != wantMethod || !sameVia(got.Via, wantVia) || got.Size != matrixSize || got.Fallback != "" {
		t.Fatalf("xfer result %+v, want %s via %q", got, wantMethod, wantVia)
	}
	if isJingle(method) && (got.Unverified || got.Digest != "sha-256:"+sha256Hex(t, src)) {
		t.Fatalf("xfer did not verify Libervia's checksum: %+v", got)
	}
	checkStored(t, got.Path, src, sum)
	return describe(got.Method, got.Via)
}

func sha256Hex(t *testing.T, p string) string {
	t.Helper()
	return testserver.SHA256File(t, p)
}
