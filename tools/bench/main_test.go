package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Every xfer row asks `xfer send` for the method its done events are
// checked against, and every Jingle row is compared with the SI row of the
// same file and way (direct or proxy).
func TestRowsClaimTheirMethod(t *testing.T) {
	cfg := config{size: 1 << 20, ibbSize: 1 << 16, rssSize: 1 << 21, rssCheck: true, compare: []variant{{"x", "/bin/x"}}}
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
		if b == nil || b.kind != kindXfer || b.want.jingle() || b.size != r.size || b.bin != r.bin ||
			strings.TrimPrefix(r.want.method, "jingle-") != b.want.method || b.want.via != r.want.via || b.server != r.server {
			t.Errorf("%s: compared with %v, not its SI counterpart", r.name(), b)
		}
	}
	if jingles != 8 { // direct, proxy, ibb; the same two for -compare and -rss-check; direct with TCP_NODELAY
		t.Errorf("%d Jingle rows, want 8", jingles)
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
