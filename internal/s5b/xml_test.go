package s5b

import (
	"errors"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestDstAddr(t *testing.T) {
	tests := []struct {
		sid, requester, target, want string
	}{
		// XEP-0065's example entities.
		{"vxf9n471bn46", "requester@example.com/foo", "target@example.org/bar", "98b8d688d0f5d895fd41c5e7309a2e9e33ba32ff"},
		// The QXmpp capture's stream.
		{"d73f22b7-4e8c-48f0-b32f-1171619c9ec4", "q1@localhost/QXmpp", "q2@localhost/QXmpp", "81c4cc53bf5e9d03513e10dfb33b9a5093e3bb7b"},
	}
	for _, tt := range tests {
		if got := DstAddr(tt.sid, tt.requester, tt.target); got != tt.want {
			t.Errorf("DstAddr(%q, %q, %q) = %s, want %s", tt.sid, tt.requester, tt.target, got, tt.want)
		}
	}
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *Query
		wantErr error
	}{
		{
			name: "qxmpp proxy answer",
			in:   `<query xmlns='http://jabber.org/protocol/bytestreams' sid='d73f22b7-4e8c-48f0-b32f-1171619c9ec4'><streamhost port='49064' jid='proxy.localhost' host='127.0.0.1'/></query>`,
			want: &Query{SID: "d73f22b7-4e8c-48f0-b32f-1171619c9ec4", Streamhosts: []Streamhost{{"proxy.localhost", "127.0.0.1", 49064}}},
		},
		{
			name: "qxmpp request",
			in:   `<query xmlns="http://jabber.org/protocol/bytestreams" sid="d73f22b7-4e8c-48f0-b32f-1171619c9ec4"><streamhost host="127.0.0.1" jid="proxy.localhost" port="49064"/></query>`,
			want: &Query{SID: "d73f22b7-4e8c-48f0-b32f-1171619c9ec4", Streamhosts: []Streamhost{{"proxy.localhost", "127.0.0.1", 49064}}},
		},
		{
			name: "qxmpp streamhost-used",
			in:   `<query xmlns='http://jabber.org/protocol/bytestreams' sid='d73f22b7-4e8c-48f0-b32f-1171619c9ec4'><streamhost-used jid='proxy.localhost'/></query>`,
			want: &Query{SID: "d73f22b7-4e8c-48f0-b32f-1171619c9ec4", Used: "proxy.localhost"},
		},
		{
			name: "qxmpp activate",
			in:   `<query xmlns="http://jabber.org/protocol/bytestreams" sid="d73f22b7-4e8c-48f0-b32f-1171619c9ec4"><activate>q2@localhost/QXmpp</activate></query>`,
			want: &Query{SID: "d73f22b7-4e8c-48f0-b32f-1171619c9ec4", Activate: "q2@localhost/QXmpp"},
		},
		{
			name: "seed's openfire answer with mode",
			in:   `<query xmlns="http://jabber.org/protocol/bytestreams" sid="MsVt" mode="tcp"><streamhost-used jid="proxy.rabbitim.com"/></query>`,
			want: &Query{SID: "MsVt", Mode: "tcp", Used: "proxy.rabbitim.com"},
		},
		{
			name: "no port means 1080",
			in:   `<query xmlns='http://jabber.org/protocol/bytestreams'><streamhost jid='proxy.example' host='proxy.example'/></query>`,
			want: &Query{Streamhosts: []Streamhost{{"proxy.example", "proxy.example", 1080}}},
		},
		{
			name: "IPv6 bare, bracketed and zoned",
			in: `<query xmlns='http://jabber.org/protocol/bytestreams' sid='s'>` +
				`<streamhost jid='a@x/r' host='2001:db8::1' port='5000'/>` +
				`<streamhost jid='a@x/r' host='[::1]' port='5001'/>` +
				`<streamhost jid='a@x/r' host='fe80::1%eth0' port='5002'/>` +
				`</query>`,
			want: &Query{SID: "s", Streamhosts: []Streamhost{{"a@x/r", "2001:db8::1", 5000}, {"a@x/r", "::1", 5001}, {"a@x/r", "fe80::1%eth0", 5002}}},
		},
		{
			name: "unusable streamhosts skipped",
			in: `<query xmlns='http://jabber.org/protocol/bytestreams' sid='s'>` +
				`<streamhost jid='a@x/r' zeroconf='_jabber.bytestreams'/>` +
				`<streamhost host='10.0.0.1' port='1'/>` +
				`<streamhost jid='a@x/r' host='10.0.0.1' port='0'/>` +
				`<streamhost jid='a@x/r' host='10.0.0.1' port='65536'/>` +
				`<streamhost jid='a@x/r' host='10.0.0.1' port='http'/>` +
				`<streamhost jid='a@x/r' host='10.0.0.1:99' port='1'/>` +
				`<streamhost jid='a@x/r' host='evil host' port='1'/>` +
				`<streamhost jid='a@x/r' host=' 10.0.0.2 ' port=' 7777 '/>` +
				`</query>`,
			want: &Query{SID: "s", Streamhosts: []Streamhost{{"a@x/r", "10.0.0.2", 7777}}},
		},
		{
			name: "foreign elements and text ignored, first used wins",
			in: `<query xmlns='http://jabber.org/protocol/bytestreams' sid='s'>text<x xmlns='urn:other'><streamhost jid='no' host='h'/></x>` +
				`<streamhost-used jid='first'/><streamhost-used jid='second'/><activate> t@x/r </activate><activate>u@x/r</activate></query>`,
			want: &Query{SID: "s", Used: "first", Activate: "t@x/r"},
		},
		{name: "wrong namespace", in: `<query xmlns='jabber:iq:roster'/>`, wantErr: ErrMalformed},
		{name: "wrong element", in: `<activate xmlns='http://jabber.org/protocol/bytestreams'/>`, wantErr: ErrMalformed},
		{name: "empty", in: ``, wantErr: ErrMalformed},
		{name: "truncated", in: `<query xmlns='http://jabber.org/protocol/bytestreams'><streamhost`, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseQuery([]byte(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
			checkRoundTrip(t, got)
		})
	}
}

func TestParseQueryBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`<query xmlns='http://jabber.org/protocol/bytestreams' sid='s'>`)
	for i := range 1000 {
		b.WriteString(`<streamhost jid='h` + strconv.Itoa(i) + `' host='127.0.0.1' port='` + strconv.Itoa(1000+i) + `'/>`)
	}
	b.WriteString(`</query>`)
	q, err := ParseQuery([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Streamhosts) != MaxStreamhosts {
		t.Fatalf("kept %d streamhosts, want %d", len(q.Streamhosts), MaxStreamhosts)
	}
	for i, h := range q.Streamhosts {
		if h.JID != "h"+strconv.Itoa(i) {
			t.Fatalf("streamhost %d is %s: order not kept", i, h.JID)
		}
	}
}

func TestMarshal(t *testing.T) {
	const ns = `xmlns="http://jabber.org/protocol/bytestreams"`
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"proxy query", MarshalProxyQuery(), `<query ` + ns + `></query>`},
		{"request", MarshalRequest("s&1", []Streamhost{{"a@x/r", "::1", 5000}, {"proxy.x", "proxy.x", 7777}}),
			`<query ` + ns + ` sid="s&amp;1" mode="tcp"><streamhost jid="a@x/r" host="::1" port="5000"></streamhost><streamhost jid="proxy.x" host="proxy.x" port="7777"></streamhost></query>`},
		{"used", MarshalUsed("s", "proxy.x"), `<query ` + ns + ` sid="s"><streamhost-used jid="proxy.x"></streamhost-used></query>`},
		{"activate", MarshalActivate("s", "b@x/<r>"), `<query ` + ns + ` sid="s"><activate>b@x/&lt;r&gt;</activate></query>`},
	}
	for _, tt := range tests {
		if string(tt.got) != tt.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tt.name, tt.got, tt.want)
		}
		q, err := ParseQuery(tt.got)
		if err != nil {
			t.Errorf("%s: does not parse back: %v", tt.name, err)
			continue
		}
		checkRoundTrip(t, q)
	}
}

// checkRoundTrip asserts that a parsed query survives Marshal and ParseQuery
// unchanged.
func checkRoundTrip(t *testing.T, q *Query) {
	t.Helper()
	raw := q.Marshal()
	again, err := ParseQuery(raw)
	if err != nil {
		t.Fatalf("re-parsing %s: %v", raw, err)
	}
	if !reflect.DeepEqual(normalize(q), normalize(again)) {
		t.Fatalf("round trip changed the query:\nbefore %+v\nafter  %+v\nxml    %s", q, again, raw)
	}
}

func normalize(q *Query) *Query {
	c := *q
	if len(c.Streamhosts) == 0 {
		c.Streamhosts = nil
	}
	return &c
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		`<query xmlns='http://jabber.org/protocol/bytestreams' sid='d73f22b7'><streamhost port='49064' jid='proxy.localhost' host='127.0.0.1'/></query>`,
		`<query xmlns='http://jabber.org/protocol/bytestreams' sid='s'><streamhost-used jid='proxy.localhost'/></query>`,
		`<query xmlns='http://jabber.org/protocol/bytestreams' sid='s'><activate>q2@localhost/QXmpp</activate></query>`,
		`<query xmlns='http://jabber.org/protocol/bytestreams' sid='s' mode='tcp'><streamhost jid='a@x/r' host='[::1]'/></query>`,
		`<query xmlns='http://jabber.org/protocol/bytestreams'/>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := ParseQuery(data)
		if err != nil {
			if q != nil {
				t.Fatal("query returned with an error")
			}
			return
		}
		if len(q.Streamhosts) > MaxStreamhosts {
			t.Fatalf("%d streamhosts kept", len(q.Streamhosts))
		}
		for _, h := range q.Streamhosts {
			if h.JID == "" || h.Host == "" || h.Port < 1 || h.Port > 65535 {
				t.Fatalf("unusable streamhost kept: %+v", h)
			}
			if _, err := netip.ParseAddr(h.Host); err != nil && !validHostname(h.Host) {
				t.Fatalf("host %q could smuggle a port or path into a dial string", h.Host)
			}
		}
		checkRoundTrip(t, q)
	})
}
