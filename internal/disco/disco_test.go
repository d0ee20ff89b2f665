package disco

import (
	"context"
	"net"
	"reflect"
	"testing"

	"xfer/internal/session"
)

func TestParseInfo(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     *Info
		err      bool
	}{
		{"proxy", `<query xmlns='http://jabber.org/protocol/disco#info'><identity category='proxy' type='bytestreams' name='SOCKS5 Bytestreams Service'/><feature var='http://jabber.org/protocol/bytestreams'/><feature var='http://jabber.org/protocol/disco#info'/></query>`,
			&Info{Identities: []Identity{{"proxy", "bytestreams", "SOCKS5 Bytestreams Service"}}, Features: []string{"http://jabber.org/protocol/bytestreams", "http://jabber.org/protocol/disco#info"}}, false},
		{"empty", `<query xmlns='http://jabber.org/protocol/disco#info'/>`, &Info{}, false},
		{"feature without var is ignored", `<query xmlns='http://jabber.org/protocol/disco#info'><feature/></query>`, &Info{}, false},
		{"wrong namespace", `<query xmlns='http://jabber.org/protocol/disco#items'/>`, nil, true},
		{"not xml", `<<`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseInfo([]byte(tc.in))
			if (err != nil) != tc.err {
				t.Fatalf("err = %v", err)
			}
			if !tc.err && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseItems(t *testing.T) {
	items, err := ParseItems([]byte(`<query xmlns='http://jabber.org/protocol/disco#items'><item jid='proxy.localhost' name='p'/><item name='no jid'/><item jid='upload.localhost'/></query>`))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].JID != "proxy.localhost" || items[1].JID != "upload.localhost" {
		t.Fatalf("items %+v", items)
	}
}

// answerFunc is an IQSender that answers from a function, standing in for
// a server with several components.
type answerFunc func(iq *session.IQ) ([]byte, error)

func (f answerFunc) SendIQ(_ context.Context, iq *session.IQ) (*session.IQ, error) {
	payload, err := f(iq)
	if err != nil {
		return nil, err
	}
	return &session.IQ{Type: session.TypeResult, From: iq.To, Payload: payload}, nil
}

func TestFindProxies(t *testing.T) {
	server := answerFunc(func(iq *session.IQ) ([]byte, error) {
		switch {
		case iq.To == "example.org":
			return []byte(`<query xmlns='` + NSItems + `'><item jid='proxy.example.org'/><item jid='upload.example.org'/><item jid='broken.example.org'/><item jid='proxy2.example.org'/></query>`), nil
		case iq.To == "proxy.example.org" || iq.To == "proxy2.example.org":
			return (&Info{Identities: []Identity{{Category: "proxy", Type: "bytestreams"}}}).Marshal(), nil
		case iq.To == "upload.example.org":
			return (&Info{Identities: []Identity{{Category: "store", Type: "file"}}}).Marshal(), nil
		}
		return nil, session.NewError(session.CondServiceUnavailable, "")
	})
	got, err := FindProxies(context.Background(), server, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"proxy.example.org", "proxy2.example.org"}) {
		t.Fatalf("proxies %v", got)
	}
	none := answerFunc(func(iq *session.IQ) ([]byte, error) { return nil, session.NewError(session.CondServiceUnavailable, "") })
	if _, err := FindProxies(context.Background(), none, "example.org"); err == nil {
		t.Fatal("no error when the server has no item list")
	}
}

func TestHandlerOverPipe(t *testing.T) {
	ca, cb := net.Pipe()
	client := session.NewStream(ca, "alice@example.org/a")
	peer := session.NewStream(cb, "bob@example.org/b")
	defer client.Close()
	defer peer.Close()
	client.Handle(session.TypeGet, NSInfo, Handler(&Info{Identities: []Identity{{Category: "client", Type: "pc", Name: "xfer"}}, Features: []string{"http://jabber.org/protocol/si"}}))
	info, err := GetInfo(context.Background(), peer, client.JID())
	if err != nil || !info.HasFeature("http://jabber.org/protocol/si") || !info.HasIdentity("client", "pc") {
		t.Fatalf("info %+v, %v", info, err)
	}
	// A node we do not have.
	_, err = peer.SendIQ(context.Background(), &session.IQ{Type: session.TypeGet, To: client.JID(), Payload: []byte(`<query xmlns='` + NSInfo + `' node='x'/>`)})
	if err == nil {
		t.Fatal("node query answered")
	}
}

func FuzzParseInfo(f *testing.F) {
	f.Add([]byte(`<query xmlns='http://jabber.org/protocol/disco#info'><identity category='proxy' type='bytestreams'/><feature var='x'/></query>`))
	f.Add([]byte(`<query xmlns='http://jabber.org/protocol/disco#items'><item jid='a'/></query>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if info, err := ParseInfo(in); err == nil {
			back, err := ParseInfo(info.Marshal())
			if err != nil || len(back.Features) != len(info.Features) || len(back.Identities) != len(info.Identities) {
				t.Fatalf("round trip: %+v -> %+v (%v)", info, back, err)
			}
		}
		_, _ = ParseItems(in)
	})
}
