package main

import (
	"context"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"xfer/internal/testserver"
)

// Every xfer row asks `xfer send` for the method its done events are
// checked against, and every Jingle row is compared with the SI row of the
// same file and way (direct or proxy).
func TestRowsClaimTheirMethod(t *testing.T) {
	cfg := config{size: 1 << 20, ibbSize: 1 << 16, rssSize: 1 << 21, rssCheck: true, compare: []variant{{name: "x", path: "/bin/x"}}}
	rows := tableRows(cfg)
	jingles := 0
	for _, r := range rows {
		if r.kind != kindXfer {
			continue
		}
		i := slices.Index(r.args, "--method")
		if i < 0 || i+1 >= len(r.args) || r.args[i+1] != r.want.method {
			t.Errorf("%s: args %q, checked against method %q", r.name(), r.args, r.want.method)
		}
		proxy := slices.Contains(r.args, "--no-direct")
		switch {
		case strings.HasSuffix(r.want.method, "ibb") && r.want.via != "":
			t.Errorf("%s: in-band, want via %q", r.name(), r.want.via)
		case strings.HasSuffix(r.want.method, "s5b") && r.want.via != map[bool]string{false: "direct", true: "proxy"}[proxy]:
			t.Errorf("%s: args %q, want via %q", r.name(), r.args, r.want.via)
		}
		if !r.want.jingle() {
			continue
		}
		jingles++
		b := r.base
		if r.twin != nil && (r.twin.want != r.want || r.twin.size != r.size || r.twin.bin != "" || r.bin == "") {
			t.Errorf("%s: -compare twin %v", r.name(), r.twin)
		}
		if b == nil || b.kind != kindXfer || b.want.jingle() || b.size != r.size || b.bin != r.bin ||
			strings.TrimPrefix(r.want.method, "jingle-") != b.want.method || b.want.via != r.want.via || b.server != r.server {
			t.Errorf("%s: compared with %v, not its SI counterpart", r.name(), b)
		}
	}
	if jingles != 10 { // direct, proxy, latency, ibb; direct, proxy and ibb for -compare; two for -rss-check; direct with TCP_NODELAY
		t.Errorf("%d Jingle rows, want 10", jingles)
	}
	// -rows keeps a row's baselines down to the raw one.
	cfg.filter = regexp.MustCompile(`^xfer jingle-s5b, proxy65 \(`)
	var names []string
	for _, r := range tableRows(cfg) {
		names = append(names, r.name())
	}
	want := []string{"raw SOCKS5 relay, proxy65, hash first; receiver hashes + writes", "xfer s5b, proxy65 (--no-direct)", "xfer jingle-s5b, proxy65 (--no-direct)"}
	if !slices.Equal(names, want) {
		t.Errorf("-rows: %q, want %q", names, want)
	}
}

// The -wan rows: every link setting has each way once, in bounded files,
// IBB rows carry their window bound, and -compare adds both IBB rows per
// link, twinned with this tree's.
func TestWANRows(t *testing.T) {
	w, err := parseWAN("0,20ms,80ms", "0,0.5", "0", 5)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config{wan: w, compare: []variant{{name: "x", path: "/bin/x"}}}
	rows := wanRows(cfg, testserver.Options{Netns: "ns", Host: "10.77.0.1"})
	// Per link: raw TCP, raw relay, S5B direct and proxy (SI and Jingle),
	// IBB fixed and adaptive, Jingle IBB, -compare's two, both adaptive
	// and fixed against a Prosody without Nagle, upload.
	if len(rows) != 6*14 {
		t.Fatalf("%d rows, want 6 link settings × 14", len(rows))
	}
	for _, r := range rows {
		if r.link == nil || r.size < 256<<10 || r.size > 64<<20 {
			t.Errorf("%s: link %v, size %d", r.name(), r.link, r.size)
		}
		if r.kind != kindTCP && (r.server.Netns != "ns" || r.server.Host != "10.77.0.1") {
			t.Errorf("%s: server %+v", r.name(), r.server)
		}
		if want := strings.HasSuffix(r.want.method, "ibb") && r.link.rtt > 0; (r.bound > 0) != want {
			t.Errorf("%s: bound %v at %v", r.name(), r.bound, r.link.rtt)
		}
		if r.base != nil && (r.base.link != r.link || r.base.size != r.size && !strings.HasPrefix(r.method, r.base.method)) {
			t.Errorf("%s: compared with %s on %v", r.name(), r.base.name(), r.base.link)
		}
		if r.want.method == "upload" && r.size > testserver.UploadSizeLimit {
			t.Errorf("%s: %d bytes, over the upload limit", r.name(), r.size)
		}
	}
	// 80 ms, 0.5 %: small files, so that a row stays within seconds.
	if s := wanSize(wayDirect, wanLink{rtt: 80 * time.Millisecond, loss: 0.005}, 5); s > 4<<20 {
		t.Errorf("direct at 80 ms, 0.5 %%: %d bytes", s)
	}
	if s := wanSize(wayIBBFixed, wanLink{rtt: 80 * time.Millisecond}, 5); s > 2<<20 {
		t.Errorf("IBB, fixed window, at 80 ms: %d bytes", s)
	}
	if s := wanSize(wayIBB, wanLink{rtt: 80 * time.Millisecond}, 5); s > 16<<20 {
		t.Errorf("IBB at 80 ms: %d bytes", s)
	}
	// -rows selects by this tree's row names; -compare's rows and the
	// baseline (the fixed window) go with them.
	cfg.filter = regexp.MustCompile(`ibb, defaults$`)
	var names []string
	for _, r := range wanRows(cfg, testserver.Options{})[:6] {
		names = append(names, r.name())
	}
	if want := []string{"xfer ibb, fixed window 16 (--ibb-window 16)", "xfer ibb, defaults", "xfer jingle-ibb, defaults", "xfer ibb [x], defaults", "xfer jingle-ibb [x], defaults",
		"xfer ibb, fixed window 16 (--ibb-window 16)"}; !slices.Equal(names, want) {
		t.Errorf("-rows: %q, want %q", names, want)
	}
	for _, bad := range [][2]string{{"x", "0"}, {"0", "-1"}, {"3s", "0"}, {"0", "60"}} {
		if _, err := parseWAN(bad[0], bad[1], "0", 5); err == nil {
			t.Errorf("parseWAN(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func TestCheckDone(t *testing.T) {
	for _, c := range []struct {
		ev   event
		w    want
		fail bool
	}{
		{event{Method: "s5b", Via: "direct"}, want{"s5b", "direct"}, false},
		{event{Method: "s5b", Via: "proxy proxy.localhost"}, want{"s5b", "proxy"}, false},
		{event{Method: "jingle-s5b", Via: "proxy proxy.localhost"}, want{"jingle-s5b", "proxy"}, false},
		{event{Method: "jingle-ibb"}, want{"jingle-ibb", ""}, false},
		{event{Method: "jingle-s5b", Via: "direct"}, want{"s5b", "direct"}, true},
		{event{Method: "ibb"}, want{"s5b", "direct"}, true}, // fell back
		{event{Method: "jingle-ibb"}, want{"jingle-s5b", "proxy"}, true},
		{event{Method: "s5b", Via: "direct"}, want{"s5b", "proxy"}, true},
		{event{}, want{"ibb", ""}, true},
	} {
		if err := checkDone("send", c.ev, c.w); (err != nil) != c.fail {
			t.Errorf("checkDone(%+v, %+v) = %v", c.ev, c.w, err)
		}
	}
	f := payload{sum: "aa", sha256: "bb"}
	for _, c := range []struct {
		ev   event
		w    want
		fail bool
	}{
		{event{MD5: "aa"}, want{"s5b", "direct"}, false},
		{event{Digest: "sha-256:bb"}, want{"jingle-ibb", ""}, false},
		{event{MD5: "ab"}, want{"s5b", "direct"}, true},
		{event{Digest: "sha-256:bb"}, want{"ibb", ""}, true},
		{event{Digest: "sha-256:ba"}, want{"jingle-s5b", "direct"}, true},
		{event{MD5: "aa"}, want{"jingle-s5b", "direct"}, true},
	} {
		if err := checkSums(c.ev, f, c.w); (err != nil) != c.fail {
			t.Errorf("checkSums(%+v, %+v) = %v", c.ev, c.w, err)
		}
	}
}

// -compare's summary puts each build's IBB row next to this tree's, with
// the ratios of MB/s and of receiver CPU per MiB.
func TestPrintCompare(t *testing.T) {
	this := &row{method: "xfer ibb", settings: "defaults", results: []result{{bytes: 1 << 20, seconds: 1, recvCPU: 0.2}}}
	other := &row{method: "xfer ibb [HEAD~1 abc1234]", settings: "defaults", twin: this, link: &wanLink{rtt: 20 * time.Millisecond},
		results: []result{{bytes: 1 << 20, seconds: 0.5, recvCPU: 0.1}}}
	var b strings.Builder
	printCompare(&b, []*row{this, other})
	out := b.String()
	for _, want := range []string{"RTT 20ms, loss 0 %", "[HEAD~1 abc1234]", "2.00×", "0.200", "0.100", "0.50×"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printCompare(&b, []*row{this})
	if b.Len() != 0 {
		t.Errorf("a summary without -compare rows:\n%s", b.String())
	}
}

// A -compare revision that git does not know fails before anything runs.
func TestBuildVariantsUnknownRevision(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip(err)
	}
	vs := []variant{{rev: "no-such-revision-" + randomHex(4)}}
	err := buildVariants(context.Background(), vs, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "not a git revision") || vs[0].path != "" {
		t.Errorf("buildVariants = %v, variant %+v", err, vs[0])
	}
}
