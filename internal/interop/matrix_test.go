package interop

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"xfer/internal/libervia"
	"xfer/internal/session"
	"xfer/internal/testserver"
	"xfer/internal/transfer"
)

// The interoperability matrix: every pair of ends over every bytestream
// through both servers, one table.
//
//	servers:    Prosody (the package's, from TestMain), ejabberd (started here)
//	methods:    SI (XEP-0096) and Jingle (XEP-0234), each over S5B direct,
//	            S5B through the server's proxy, and IBB
//	directions: xfer → xfer, xfer → slixmpp, slixmpp → xfer,
//	            xfer → Libervia, Libervia → xfer
//
// Each cell is a real transfer of matrixSize random bytes, checked by MD5
// (and for Libervia SHA-256) on the receiving side and by both sides' account of how the bytes went. A
// cell the peer cannot do is shown as "peer cannot" with the reason (and
// its subtest is skipped with that reason), never left out. The table goes
// to the test log, and to stdout with XFER_INTEROP_TABLE=1 (make interop).

const matrixSize = 5<<19 + 4321 // 2.5 MiB and a bit: no block boundary

// Account for the second xfer end of xfer → xfer.
const peerUser = "xferpeer"

// matrixServer is one server of the matrix and what the ends need to
// reach it.
type matrixServer struct {
	name     string
	srv      *testserver.Server
	roots    *x509.CertPool
	libervia *libervia.Peer // one Libervia backend per server
}

const (
	methodDirect       = "SI S5B direct"
	methodProxy        = "SI S5B proxy"
	methodIBB          = "SI IBB"
	methodJingleDirect = "Jingle S5B direct"
	methodJingleProxy  = "Jingle S5B proxy"
	methodJingleIBB    = "Jingle IBB"

	dirXferXfer = "xfer → xfer"
	dirXferSlix = "xfer → slixmpp"
	dirSlixXfer = "slixmpp → xfer"
	dirXferLV   = "xfer → Libervia"
	dirLVXfer   = "Libervia → xfer"
)

var (
	matrixMethods    = []string{methodDirect, methodProxy, methodIBB, methodJingleDirect, methodJingleProxy, methodJingleIBB}
	matrixDirections = []string{dirXferXfer, dirXferSlix, dirSlixXfer, dirXferLV, dirLVXfer}
)

func isJingle(method string) bool { return strings.HasPrefix(method, "Jingle") }

// peerCannot lists the cells no test can make work because of the
// independent peer, with the reason.
var peerCannot = map[[2]string]string{
	{methodDirect, dirSlixXfer}: "slixmpp 1.8.3 offers no direct streamhost as a sender: xep_0065.handshake offers only the proxies it discovered (it has no SOCKS5 server)",
}

func init() {
	const noJingle = "slixmpp 1.8.3 has no Jingle file transfer (XEP-0234)"
	for _, m := range []string{methodJingleDirect, methodJingleProxy, methodJingleIBB} {
		peerCannot[[2]string{m, dirXferSlix}] = noJingle
		peerCannot[[2]string{m, dirSlixXfer}] = noJingle
	}
}

// cell is one transfer's outcome for the table.
type cell struct {
	status string // "ok", "FAIL", "peer cannot"
	detail string
}

type matrix struct {
	mu    sync.Mutex
	cells map[[3]string]*cell // server, method, direction
}

func (m *matrix) set(server, method, dir string, c *cell) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cells[[3]string{server, method, dir}] = c
}

func TestMatrix(t *testing.T) {
	requireSlixmpp(t)
	servers := []*matrixServer{{name: "Prosody", srv: srv, roots: roots}}
	if err := srv.Register(peerUser, password(peerUser)); err != nil {
		t.Fatal(err)
	}
	// Plain: Libervia logs in through Twisted, which has no SCRAM.
	ej, err := testserver.StartEjabberd(testserver.Options{Plain: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ej.Stop)
	for _, u := range []string{xferUser, slixUser, peerUser} {
		if err := ej.Register(u, password(u)); err != nil {
			t.Fatal(err)
		}
	}
	pem, err := os.ReadFile(ej.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	ejRoots := x509.NewCertPool()
	ejRoots.AppendCertsFromPEM(pem)
	servers = append(servers, &matrixServer{name: "ejabberd", srv: ej, roots: ejRoots})
	startLibervia(t, servers)

	m := &matrix{cells: map[[3]string]*cell{}}
	start := time.Now()
	t.Run("cells", func(t *testing.T) {
		for _, ms := range servers {
			t.Run(ms.name, func(t *testing.T) {
				t.Parallel() // the servers are independent; cells on one server run one at a time
				for _, method := range matrixMethods {
					for _, dir := range matrixDirections {
						c := &cell{}
						m.set(ms.name, method, dir, c)
						t.Run(method+"/"+dir, func(t *testing.T) {
							if why, ok := peerCannot[[2]string{method, dir}]; ok {
								c.status, c.detail = "peer cannot", why
								t.Skip("peer cannot: " + why)
							}
							defer func() {
								if t.Failed() {
									c.status = "FAIL"
								}
							}()
							c.detail = runCell(t, ms, method, dir)
							c.status = "ok"
						})
					}
				}
			})
		}
	})
	table := m.render(servers, time.Since(start))
	t.Log("\n" + table)
	if os.Getenv("XFER_INTEROP_TABLE") != "" {
		fmt.Print(table)
	}
}

// runCell runs one transfer and returns how the bytes went, for the table.
func runCell(t *testing.T, ms *matrixServer, method, dir string) string {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	src, sum := writeRandom(t, t.TempDir(), "matrix "+ms.name+" "+strings.ReplaceAll(method, " ", "-")+".bin", matrixSize)
	start := time.Now()
	var via string
	switch dir {
	case dirXferXfer:
		via = xferToXfer(ctx, t, ms, method, src, sum)
	case dirXferSlix:
		via = xferToSlix(ctx, t, ms, method, src, sum)
	case dirSlixXfer:
		via = slixToXfer(ctx, t, ms, method, src, sum)
	case dirXferLV:
		via = xferToLibervia(ctx, t, ms, method, src, sum)
	case dirLVXfer:
		via = liberviaToXfer(ctx, t, ms, method, src, sum)
	}
	secs := time.Since(start).Seconds()
	return fmt.Sprintf("%s, %.2fs", via, secs)
}

// wantVia is how xfer names the way the bytes went for method.
func wantVia(ms *matrixServer, method string) (string, string) {
	switch method {
	case methodDirect:
		return "s5b", "direct"
	case methodProxy:
		return "s5b", "proxy " + ms.srv.ProxyJID
	case methodJingleDirect:
		return "jingle-s5b", "direct"
	case methodJingleProxy:
		return "jingle-s5b", "proxy " + ms.srv.ProxyJID
	case methodJingleIBB:
		return "jingle-ibb", ""
	}
	return "ibb", ""
}

// sameVia compares xfer's "proxy JID" with the proxy's disco JID: the JID
// in a streamhost may carry a resource (ejabberd's mod_proxy65 answers
// proxy.localhost/NODE-ID, for its cluster's routing), and the bytes went
// through the proxy all the same.
func sameVia(got, want string) bool {
	g, ok1 := strings.CutPrefix(got, "proxy ")
	w, ok2 := strings.CutPrefix(want, "proxy ")
	if ok1 && ok2 {
		return session.Bare(g) == w
	}
	return got == want
}

// sendOptions are xfer's sender options for a cell: one method only, so
// that no fallback hides a failure, and only loopback direct addresses.
func sendOptions(method string) transfer.SendOptions {
	o := transfer.SendOptions{Method: "s5b", AcceptTimeout: 20 * time.Second}
	o.S5B.ServerLoopback = true
	o.S5B.HostTimeout = 5 * time.Second
	switch method {
	case methodProxy:
		o.S5B.NoDirect = true
	case methodIBB:
		o.Method = "ibb"
	case methodJingleDirect:
		o.Method = "jingle-s5b"
	case methodJingleProxy:
		o.Method, o.S5B.NoDirect = "jingle-s5b", true
	case methodJingleIBB:
		o.Method = "jingle-ibb"
	}
	return o
}

// describe is a cell's detail: how the bytes went ("direct", "proxy
// JID", "ibb").
func describe(method, via string) string {
	if via == "" {
		return method
	}
	return via
}

func xferToXfer(ctx context.Context, t *testing.T, ms *matrixServer, method, src, sum string) string {
	wantMethod, wantVia := wantVia(ms, method)
	rs := loginOn(t, ms, peerUser)
	dir := t.TempDir()
	r, err := transfer.NewReceiver(ctx, rs, transfer.ReceiveOptions{Dir: dir, Allow: []string{bareOn(ms, xferUser)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	xs := loginOn(t, ms, xferUser)
	res, err := (&transfer.Sender{S: xs, Opts: sendOptions(method)}).Send(ctx, rs.JID(), src)
	if err != nil {
		t.Fatalf("xfer send: %v", err)
	}
	if res.Method != wantMethod || !sameVia(res.Via, wantVia) || res.Fallback != "" || (!isJingle(method) && res.Hash != sum) {
		t.Fatalf("sender: %s via %q (fallback %q), md5 %s; want %s via %q, md5 %s", res.Method, res.Via, res.Fallback, res.Hash, wantMethod, wantVia, sum)
	}
	got, err := r.Next(ctx)
	if err != nil {
		t.Fatalf("xfer receiver: %v", err)
	}
	if got.Method != wantMethod || !sameVia(got.Via, wantVia) || got.SID != res.SID || got.Size != matrixSize {
		t.Fatalf("receiver: %+v; want %s via %q", got, wantMethod, wantVia)
	}
	checkStored(t, got.Path, src, sum)
	return describe(res.Method, res.Via)
}

func xferToSlix(ctx context.Context, t *testing.T, ms *matrixServer, method, src, sum string) string {
	wantMethod, wantVia := wantVia(ms, method)
	dir := t.TempDir()
	script := "s5b_receive.py"
	if method == methodIBB {
		script = "si_receive.py"
	}
	d := startDriverOn(ctx, t, ms, script, slixUser, "--dir", dir, "--from", bareOn(ms, xferUser))
	ready := d.next(ctx, t, "ready")
	xs := loginOn(t, ms, xferUser)
	res, err := (&transfer.Sender{S: xs, Opts: sendOptions(method)}).Send(ctx, ready.JID, src)
	if err != nil {
		t.Fatalf("xfer send: %v\n%s", err, d.output())
	}
	if res.Method != wantMethod || !sameVia(res.Via, wantVia) || res.Fallback != "" {
		t.Fatalf("sender: %s via %q (fallback %q), want %s via %q\n%s", res.Method, res.Via, res.Fallback, wantMethod, wantVia, d.output())
	}
	got := d.next(ctx, t, "result")
	d.wait(ctx, t)
	if !got.OK || got.SID != res.SID || got.Bytes != matrixSize || got.Size != matrixSize || got.MD5 != sum || got.Hash != sum ||
		session.Bare(got.From) != bareOn(ms, xferUser) {
		t.Fatalf("slixmpp reports %+v; xfer sent %+v\n%s", got, res, d.output())
	}
	switch sh := d.s5bDetails(t, "result").Streamhost; method {
	case methodProxy:
		if sh != ms.srv.ProxyAddr {
			t.Fatalf("slixmpp used streamhost %s, want the proxy at %s", sh, ms.srv.ProxyAddr)
		}
	case methodDirect:
		if sh == ms.srv.ProxyAddr || sh == "" {
			t.Fatalf("slixmpp used streamhost %q, want xfer's own", sh)
		}
	}
	checkStored(t, got.Path, src, sum)
	return describe(res.Method, res.Via)
}

func slixToXfer(ctx context.Context, t *testing.T, ms *matrixServer, method, src, sum string) string {
	wantMethod, wantVia := wantVia(ms, method)
	xs := loginOn(t, ms, xferUser)
	dir := t.TempDir()
	ro := transfer.ReceiveOptions{Dir: dir, Allow: []string{bareOn(ms, slixUser)}}
	ro.S5B.HostTimeout = 5 * time.Second
	r, err := transfer.NewReceiver(ctx, xs, ro, nil)
	if err != nil {
		t.Fatal(err)
	}
	script := "s5b_send.py"
	if method == methodIBB {
		script = "si_send.py"
	}
	d := startDriverOn(ctx, t, ms, script, slixUser, "--to", xs.JID(), "--file", src)
	sent := d.next(ctx, t, "result")
	d.wait(ctx, t)
	if !sent.OK || sent.Bytes != matrixSize || sent.MD5 != sum {
		t.Fatalf("slixmpp reports %+v, want %d bytes with md5 %s\n%s", sent, matrixSize, sum, d.output())
	}
	if method == methodProxy {
		if det := d.s5bDetails(t, "result"); det.Used != ms.srv.ProxyJID {
			t.Fatalf("slixmpp sent through %q (found %v), want %s\n%s", det.Used, det.Proxies, ms.srv.ProxyJID, d.output())
		}
	}
	got, err := r.Next(ctx)
	if err != nil {
		t.Fatalf("xfer receiver: %v\n%s", err, d.output())
	}
	if got.Method != wantMethod || !sameVia(got.Via, wantVia) || got.SID != sent.SID || got.Size != matrixSize || got.Hash != sum ||
		session.Bare(got.Peer) != bareOn(ms, slixUser) {
		t.Fatalf("xfer result %+v, want %s via %q; slixmpp sent %+v", got, wantMethod, wantVia, sent)
	}
	checkStored(t, got.Path, src, sum)
	return describe(got.Method, got.Via)
}

// checkStored fails unless the file at got is the one at src, by MD5 and
// byte for byte.
func checkStored(t *testing.T, got, src, sum string) {
	t.Helper()
	if m := md5Hex(t, got); m != sum {
		t.Fatalf("stored md5 %s, want %s", m, sum)
	}
	sameFile(t, got, src)
}

// render is the table: a row per server and method, a column per
// direction, then the reasons for "peer cannot".
func (m *matrix) render(servers []*matrixServer, took time.Duration) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "xfer interoperability matrix: %s, slixmpp %s, Libervia %s; %.1f MiB per cell, MD5 checked;\n"+
		"each cell: how the bytes went, and its wall time with logins and the peer's start; all: %.0fs\n",
		versions(), debVersion("python3-slixmpp"), debVersion("libervia-backend"), float64(matrixSize)/(1<<20), took.Seconds())
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "server\tmethod\t%s\t\n", strings.Join(matrixDirections, "\t"))
	var notes []string
	for _, ms := range servers {
		for _, method := range matrixMethods {
			fmt.Fprintf(tw, "%s\t%s\t", ms.name, method)
			for _, dir := range matrixDirections {
				c := m.cells[[3]string{ms.name, method, dir}]
				switch {
				case c == nil || c.status == "":
					fmt.Fprint(tw, "not run\t")
				case c.status == "peer cannot":
					idx := slices.Index(notes, c.detail)
					if idx < 0 {
						notes = append(notes, c.detail)
						idx = len(notes) - 1
					}
					fmt.Fprintf(tw, "peer cannot (%d)\t", idx+1)
				case c.status == "ok":
					fmt.Fprintf(tw, "ok (%s)\t", c.detail)
				default:
					fmt.Fprintf(tw, "%s\t", c.status)
				}
			}
			fmt.Fprintln(tw)
		}
	}
	tw.Flush()
	for i, n := range notes {
		fmt.Fprintf(&b, "(%d) %s\n", i+1, n)
	}
	return b.String()
}

func versions() string {
	return "Prosody " + debVersion("prosody") + ", ejabberd " + debVersion("ejabberd")
}

// debVersion is an installed Debian package's version, for the table.
func debVersion(pkg string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil {
		return "?"
	}
	return string(out)
}

// The package's helpers (interop_test.go) are bound to the Prosody of
// TestMain; these take the matrix's server.

func bareOn(ms *matrixServer, user string) string { return user + "@" + ms.srv.Domain }

// loginOn logs an xfer session in to ms as user with a fresh resource.
func loginOn(t *testing.T, ms *matrixServer, user string) *session.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := session.Dial(ctx, session.Config{
		JID:      bareOn(ms, user) + "/xfer-" + session.NewID()[:8],
		Password: password(user),
		Server:   ms.srv.Addr,
		RootCAs:  ms.roots,
		Timeout:  10 * time.Second,
	})
	if err != nil {
		t.Fatalf("%s: login %s: %v", ms.name, user, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startDriverOn is startDriver against ms.
func startDriverOn(ctx context.Context, t *testing.T, ms *matrixServer, script, user string, args ...string) *driver {
	t.Helper()
	if ms.srv == srv {
		return startDriver(ctx, t, script, user, args...)
	}
	host, port, err := net.SplitHostPort(ms.srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	// startDriver passes the package server's address and certificate;
	// later options win in argparse, so these point the script at ms.
	return startDriver(ctx, t, script, user, append(args,
		"--jid", bareOn(ms, user), "--host", host, "--port", port, "--cafile", ms.srv.CAFile)...)
}

// s5bReport is what the S5B drivers report beyond the package's report.
type s5bReport struct {
	Streamhost string   `json:"streamhost"` // s5b_receive.py: host:port it used
	Used       string   `json:"used"`       // s5b_send.py: the proxy JID it used
	Proxies    []string `json:"proxies"`    // s5b_send.py: the proxies it found
}

// s5bDetails decodes the driver's last line of type typ again, for the
// S5B fields.
func (d *driver) s5bDetails(t *testing.T, typ string) s5bReport {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.stdout) - 1; i >= 0; i-- {
		var r struct {
			Type string `json:"type"`
			s5bReport
		}
		if json.Unmarshal([]byte(d.stdout[i]), &r) == nil && r.Type == typ {
			return r.s5bReport
		}
	}
	t.Fatalf("no %q line from %s", typ, d.name)
	return s5bReport{}
}
