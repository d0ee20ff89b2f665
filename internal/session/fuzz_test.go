package session

import (
	"net"
	"testing"
	"time"
)

func FuzzParseError(f *testing.F) {
	f.Add([]byte(`<error type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>x</text></error>`))
	f.Add([]byte(`<error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><no-valid-streams xmlns='http://jabber.org/protocol/si'/></error>`))
	f.Add([]byte(`<error`))
	f.Fuzz(func(t *testing.T, in []byte) {
		se := ParseError(in)
		if se == nil || se.Condition == "" {
			t.Fatalf("ParseError(%q) = %+v", in, se)
		}
		back := ParseError(se.marshal())
		if back.Condition != se.Condition || back.Text != se.Text {
			t.Fatalf("round trip %+v -> %+v", se, back)
		}
	})
}

// Whatever a peer writes on a stream, the session neither panics nor
// hangs: it dispatches what parses and ends on what does not.
func FuzzStream(f *testing.F) {
	f.Add([]byte(`<iq type='get' id='1' from='a@b/c'><ping xmlns='urn:xmpp:ping'/></iq>`))
	f.Add([]byte(`<iq type='result' id='x'/><presence from='a@b/c'><priority>5</priority></presence><message/>`))
	f.Add([]byte(`<iq type='set' id='2'><x xmlns='urn:a'/><error type='cancel'/></iq><<<`))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		s := NewStream(a, "me@example.org/r")
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := b.Read(buf); err != nil {
					return
				}
			}
		}()
		b.SetWriteDeadline(time.Now().Add(time.Second))
		b.Write(in)
		b.Close()
		select {
		case <-s.Done():
		case <-time.After(2 * time.Second):
			t.Fatal("session did not end after the peer closed")
		}
		s.Close()
	})
}
