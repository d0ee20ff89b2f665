package session

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func pipePair(t *testing.T) (a, b *Session) {
	t.Helper()
	ca, cb := net.Pipe()
	a = NewStream(ca, "alice@example.org/a")
	b = NewStream(cb, "bob@example.org/b")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestIQRoundTrip(t *testing.T) {
	a, b := pipePair(t)
	b.Handle(TypeGet, "urn:test", func(ctx context.Context, iq *IQ) ([]byte, error) {
		if iq.From != "alice@example.org/a" {
			return nil, NewError(CondForbidden, "from "+iq.From)
		}
		return []byte(`<pong xmlns='urn:test'>` + string(iq.Payload) + `</pong>`), nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := a.SendIQ(ctx, &IQ{Type: TypeGet, To: "bob@example.org/b", Payload: []byte(`<ping xmlns='urn:test'/>`)})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.PayloadName(); got.Space != "urn:test" || got.Local != "pong" {
		t.Fatalf("payload %s", res.Payload)
	}
}

func TestUnhandledGetsServiceUnavailable(t *testing.T) {
	a, _ := pipePair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.SendIQ(ctx, &IQ{Type: TypeSet, To: "bob@example.org/b", Payload: []byte(`<x xmlns='urn:nobody'/>`)})
	if !errors.Is(err, NewError(CondServiceUnavailable, "")) {
		t.Fatalf("err = %v, want service-unavailable", err)
	}
}

func TestHandlerStanzaErrorReachesCaller(t *testing.T) {
	a, b := pipePair(t)
	b.Handle(TypeSet, "urn:test", func(ctx context.Context, iq *IQ) ([]byte, error) {
		return nil, &StanzaError{Type: "cancel", Condition: CondBadRequest, Text: "no", App: xmlName("http://jabber.org/protocol/si", "no-valid-streams")}
	})
	_, err := a.SendIQ(context.Background(), &IQ{Type: TypeSet, To: "bob@example.org/b", Payload: []byte(`<x xmlns='urn:test'/>`)})
	var se *StanzaError
	if !errors.As(err, &se) || se.Condition != CondBadRequest || se.App.Local != "no-valid-streams" || se.Text != "no" {
		t.Fatalf("err = %#v", err)
	}
}

// A peer that never answers: the wait ends at the context deadline.
func TestSendIQTimesOut(t *testing.T) {
	ca, cb := net.Pipe()
	a := NewStream(ca, "alice@example.org/a")
	defer a.Close()
	go func() { _, _ = bufio.NewReader(cb).ReadString('\x00') }() // swallow everything
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := a.SendIQ(ctx, &IQ{Type: TypeGet, To: "bob@example.org/b", Payload: []byte(`<x xmlns='urn:test'/>`)})
	if !errors.Is(err, ErrNoReply) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

// Replies are matched by id and by sender: a reply with the right id from
// another entity is ignored.
func TestReplyFromWrongEntityIgnored(t *testing.T) {
	ca, cb := net.Pipe()
	a := NewStream(ca, "alice@example.org/a")
	defer a.Close()
	go func() {
		r := bufio.NewReader(cb)
		line, _ := r.ReadString('>')
		id := between(line, "id='", "'")
		cb.Write([]byte(`<iq type='result' id='` + id + `' from='mallory@example.org/m'/>`))
		cb.Write([]byte(`<iq type='result' id='` + id + `' from='bob@example.org/b'><ok xmlns='urn:test'/></iq>`))
	}()
	res, err := a.SendIQ(context.Background(), &IQ{Type: TypeGet, To: "bob@example.org/b", Payload: []byte(`<x xmlns='urn:test'/>`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.From != "bob@example.org/b" || res.PayloadName().Local != "ok" {
		t.Fatalf("got %+v", res)
	}
}

func TestDisconnectFailsPending(t *testing.T) {
	ca, cb := net.Pipe()
	a := NewStream(ca, "alice@example.org/a")
	go func() {
		r := bufio.NewReader(cb)
		r.ReadString('>')
		cb.Write([]byte(`<iq type='result' <<<malformed`))
		cb.Close()
	}()
	_, err := a.SendIQ(context.Background(), &IQ{Type: TypeGet, To: "bob@example.org/b", Payload: []byte(`<x xmlns='urn:test'/>`)})
	if !errors.Is(err, ErrDisconnected) {
		t.Fatalf("err = %v", err)
	}
	select {
	case <-a.Done():
	case <-time.After(time.Second):
		t.Fatal("session not done")
	}
}

func TestParseError(t *testing.T) {
	for _, tc := range []struct{ in, cond, app, text string }{
		{`<error type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Offer Declined</text></error>`, "forbidden", "", "Offer Declined"},
		{`<error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><no-valid-streams xmlns='http://jabber.org/protocol/si'/></error>`, "bad-request", "no-valid-streams", ""},
		{`<error type='cancel'/>`, "undefined-condition", "", ""},
		{`<<<`, "undefined-condition", "", "malformed error element"},
	} {
		se := ParseError([]byte(tc.in))
		if se.Condition != tc.cond || se.App.Local != tc.app || se.Text != tc.text {
			t.Errorf("%s: got %+v", tc.in, se)
		}
		// What we parse, we can send and parse back the same.
		back := ParseError(se.marshal())
		if back.Condition != se.Condition || back.App != se.App || back.Text != se.Text {
			t.Errorf("round trip of %+v gave %+v", se, back)
		}
	}
}

func TestJID(t *testing.T) {
	if !EqualJID("Alice@Example.ORG/Res", "alice@example.org/Res") || EqualJID("a@b/R", "a@b/r") {
		t.Fatal("EqualJID")
	}
	if Bare("a@b/c/d") != "a@b" || Resource("a@b/c/d") != "c/d" || Domain("a@b/c") != "b" || Local("b") != "" {
		t.Fatal("split")
	}
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	return s[:strings.Index(s, b)]
}

func xmlName(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }
