package session

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"reflect"
	"strconv"
	"testing"
)

func itoa(i int) string { return strconv.Itoa(i) }

// fakeResolver answers SRV lookups from a table keyed by service.
type fakeResolver map[string][]*net.SRV

func (r fakeResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	if proto != "tcp" {
		return "", nil, errors.New("proto " + proto)
	}
	recs, ok := r[service]
	if !ok {
		return "", nil, &net.DNSError{Err: "no such host", Name: "_" + service + "._tcp." + name, IsNotFound: true}
	}
	return "", recs, nil
}

func TestEndpointsOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    fakeResolver
		want []string
	}{
		{"no records", fakeResolver{}, []string{"example.org:5222"}},
		{"starttls only", fakeResolver{"xmpp-client": {{Target: "xmpp.example.org.", Port: 5222, Priority: 5}}},
			[]string{"xmpp.example.org:5222", "example.org:5222"}},
		{"tie: direct tls first", fakeResolver{
			"xmpp-client":  {{Target: "a.example.org.", Port: 5222, Priority: 5, Weight: 10}},
			"xmpps-client": {{Target: "a.example.org.", Port: 443, Priority: 5, Weight: 10}},
		}, []string{"tls://a.example.org:443", "a.example.org:5222", "example.org:5222"}},
		{"priority wins over service", fakeResolver{
			"xmpp-client":  {{Target: "a.example.org.", Port: 5222, Priority: 1}},
			"xmpps-client": {{Target: "b.example.org.", Port: 5223, Priority: 2}},
		}, []string{"a.example.org:5222", "tls://b.example.org:5223", "example.org:5222"}},
		{"weight within a priority", fakeResolver{
			"xmpp-client": {{Target: "light.example.org.", Port: 5222, Priority: 1, Weight: 1}, {Target: "heavy.example.org.", Port: 5222, Priority: 1, Weight: 50}},
		}, []string{"heavy.example.org:5222", "light.example.org:5222", "example.org:5222"}},
		{"dot means no service", fakeResolver{
			"xmpps-client": {{Target: ".", Port: 0}},
			"xmpp-client":  {{Target: "example.org.", Port: 5222}},
		}, []string{"example.org:5222"}},
		{"dot: no fallback to the domain", fakeResolver{
			"xmpps-client": {{Target: ".", Port: 0}},
			"xmpp-client":  {{Target: "xmpp.example.org.", Port: 5222}},
		}, []string{"xmpp.example.org:5222"}},
		{"both dot", fakeResolver{
			"xmpps-client": {{Target: ".", Port: 0}},
			"xmpp-client":  {{Target: ".", Port: 0}},
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eps, err := Endpoints(context.Background(), tc.r, "u@example.org", "")
			if (err != nil) != (tc.want == nil) {
				t.Fatalf("err = %v", err)
			}
			var got []string
			for _, e := range eps {
				got = append(got, e.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseServer(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Endpoint
		bad  bool
	}{
		{in: "example.org", want: Endpoint{Host: "example.org", Port: 5222}},
		{in: "example.org:5999", want: Endpoint{Host: "example.org", Port: 5999}},
		{in: "tls://example.org", want: Endpoint{Host: "example.org", Port: 5223, DirectTLS: true}},
		{in: "tls://127.0.0.1:443", want: Endpoint{Host: "127.0.0.1", Port: 443, DirectTLS: true}},
		{in: "TLS://[::1]:5223", want: Endpoint{Host: "::1", Port: 5223, DirectTLS: true}},
		{in: "[::1]", want: Endpoint{Host: "::1", Port: 5222}},
		{in: "tcp://h:1", want: Endpoint{Host: "h", Port: 1}},
		{in: "https://example.org", bad: true},
		{in: "tls://", bad: true},
		{in: "h:99999", bad: true},
		{in: "h:x", bad: true},
	} {
		got, err := ParseServer(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("ParseServer(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestChooseMechanism(t *testing.T) {
	tls13 := &tls.ConnectionState{Version: tls.VersionTLS13}
	tls12 := &tls.ConnectionState{Version: tls.VersionTLS12, TLSUnique: []byte{1}}
	for _, tc := range []struct {
		name        string
		offered, cb []string
		state       *tls.ConnectionState
		refusePlain bool
		mech, bind  string
		err         error
	}{
		{"all, tls1.3, exporter", allMechs, []string{"tls-exporter"}, tls13, false, MechSCRAMSHA256Plus, CBTLSExporter, nil},
		{"all, tls1.3, no XEP-0440", allMechs, nil, tls13, false, MechSCRAMSHA256, "", nil},
		{"all, tls1.2", allMechs, nil, tls12, false, MechSCRAMSHA256Plus, CBTLSUnique, nil},
		{"all, tls1.2, server lists only exporter", allMechs, []string{"tls-exporter"}, tls12, false, MechSCRAMSHA256, "", nil},
		{"sha-1 plus", []string{MechSCRAMSHA1Plus, MechSCRAMSHA1}, nil, tls12, false, MechSCRAMSHA1Plus, CBTLSUnique, nil},
		{"no tls: no plus", allMechs, nil, nil, false, MechSCRAMSHA256, "", nil},
		{"lower case", []string{"scram-sha-1"}, nil, nil, false, MechSCRAMSHA1, "", nil},
		{"plain", []string{MechPlain, "X-OAUTH2"}, nil, tls13, false, MechPlain, "", nil},
		{"plain refused", []string{MechPlain}, nil, tls13, true, "", "", ErrDowngrade},
		{"scram preferred over refusal", []string{MechPlain, MechSCRAMSHA1}, nil, tls13, true, MechSCRAMSHA1, "", nil},
		{"nothing usable", []string{"DIGEST-MD5", "SCRAM-SHA-512"}, nil, tls13, false, "", "", ErrNoMechanism},
		{"none", nil, nil, tls13, false, "", "", ErrNoMechanism},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mech, cb, err := chooseMechanism(tc.offered, tc.cb, tc.state, tc.refusePlain)
			if mech != tc.mech || cb != tc.bind || !errors.Is(err, tc.err) || (err != nil && !errors.Is(err, ErrAuth)) {
				t.Fatalf("got %q %q %v", mech, cb, err)
			}
		})
	}
}

func TestParseServerFirst(t *testing.T) {
	nonce := []byte("abc")
	for _, tc := range []struct {
		in  string
		ok  bool
		its int
	}{
		{"r=abcdef,s=c2FsdA==,i=4096", true, 4096},
		{"r=abcdef,s=c2FsdA==,i=10000,x=ext", true, 10000},
		{"r=abcdef,s=c2FsdA==,i=0", false, 0},
		{"r=abcdef,s=c2FsdA==,i=1000000000", false, 0},
		{"r=abcdef,s=c2FsdA==,i=99999999999999999999999", false, 0},
		{"r=abcdef,s=c2FsdA==,i=-4096", false, 0},
		{"r=abcdef,s=c2FsdA==,i=04096", false, 0},
		{"r=xabcdef,s=c2FsdA==,i=4096", false, 0},
		{"r=abc,s=c2FsdA==,i=4096", false, 0},
		{"r=abcdef,s=,i=4096", false, 0},
		{"r=abcdef,s=!!!,i=4096", false, 0},
		{"m=x,r=abcdef,s=c2FsdA==,i=4096", false, 0},
		{"r=abcdef,s=c2FsdA==,i=4096,m=x", false, 0},
		{"r=abcdef,i=4096,s=c2FsdA==", false, 0},
		{"", false, 0},
	} {
		f, err := parseServerFirst([]byte(tc.in), nonce)
		if (err == nil) != tc.ok || f.Iterations != tc.its {
			t.Errorf("%q: %+v, %v", tc.in, f, err)
		}
		if err != nil && !errors.Is(err, ErrServerProof) {
			t.Errorf("%q: %v is not ErrServerProof", tc.in, err)
		}
	}
}

func TestParseServerFinal(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"v=c2ln", true}, {"v=c2ln,ext=1", true}, {"e=invalid-proof", false}, {"v=", false}, {"v=!!", false}, {"x", false}, {"", false},
	} {
		if _, err := parseServerFinal([]byte(tc.in)); (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.in, err)
		}
	}
}

func TestParseFeatures(t *testing.T) {
	f, err := parseFeatures([]byte(`<x><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>` +
		`<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism> SCRAM-SHA-1 </mechanism><mechanism>PLAIN</mechanism></mechanisms>` +
		`<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/></sasl-channel-binding>` +
		`<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></x>`))
	if err != nil {
		t.Fatal(err)
	}
	if f.StartTLS == nil || f.StartTLS.Required == nil || !reflect.DeepEqual(f.Mechanisms, []string{"SCRAM-SHA-1", "PLAIN"}) ||
		!reflect.DeepEqual(f.cbTypes(), []string{"tls-exporter"}) || f.Session == nil || f.Session.Optional == nil || f.Bind != nil {
		t.Fatalf("%+v", f)
	}
}

func TestParseSASLFailure(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`<x><not-authorized/><text xml:lang='en'>Invalid username or password</text></x>`, "not-authorized: Invalid username or password"},
		{`<x><account-disabled/></x>`, "account-disabled"},
		{`<x/>`, "not-authorized"},
		{`<<<`, "not-authorized"},
	} {
		if got := parseSASLFailure([]byte(tc.in)).String(); got != tc.want {
			t.Errorf("%s: %q", tc.in, got)
		}
	}
}
