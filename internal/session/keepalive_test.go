package session

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

type wireIQ struct {
	XMLName xml.Name
	ID      string    `xml:"id,attr"`
	Type    string    `xml:"type,attr"`
	To      string    `xml:"to,attr"`
	Ping    *struct{} `xml:"urn:xmpp:ping ping"`
}

// pingPeer reads what the session sends and hands each IQ to answer.
func pingPeer(t *testing.T, answer func(c net.Conn, iq wireIQ)) *Session {
	t.Helper()
	ca, cb := net.Pipe()
	s := NewStream(ca, "alice@example.org/a")
	t.Cleanup(func() { s.Close(); cb.Close() })
	go func() {
		dec := xml.NewDecoder(cb)
		for {
			var iq wireIQ
			if err := dec.Decode(&iq); err != nil {
				return
			}
			answer(cb, iq)
		}
	}()
	return s
}

// A server that answers nothing ends the session, with a message that
// says so; one that answers, even with an error, or that sends anything
// else, keeps it.
func TestPingLoop(t *testing.T) {
	const every, wait = 100 * time.Millisecond, 400 * time.Millisecond
	t.Run("silence ends the session", func(t *testing.T) {
		var pings atomic.Int32
		s := pingPeer(t, func(net.Conn, wireIQ) { pings.Add(1) })
		go s.pingLoop(every, wait)
		select {
		case <-s.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the session outlived a silent server")
		}
		if !errors.Is(s.Err(), ErrPingTimeout) || !errors.Is(s.Err(), ErrDisconnected) || pings.Load() != 1 {
			t.Fatalf("ended with %v after %d pings", s.Err(), pings.Load())
		}
	})
	t.Run("an error answer is an answer", func(t *testing.T) {
		answered := make(chan struct{}, 100)
		s := pingPeer(t, func(c net.Conn, iq wireIQ) {
			if iq.Ping != nil && iq.To == "example.org" && iq.Type == "get" {
				fmt.Fprintf(c, "<iq type='error' id='%s' from='example.org'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", iq.ID)
				answered <- struct{}{}
			}
		})
		go s.pingLoop(every, wait)
		for range 5 {
			select {
			case <-answered:
			case <-time.After(5 * time.Second):
				t.Fatal("no ping")
			}
		}
		if err := s.Err(); err != nil {
			t.Fatalf("ended: %v", err)
		}
	})
	t.Run("other traffic keeps it alive", func(t *testing.T) {
		ca, cb := net.Pipe()
		s := NewStream(ca, "alice@example.org/a")
		t.Cleanup(func() { s.Close(); cb.Close() })
		go func() { // read and drop what the session sends
			buf := make([]byte, 4096)
			for {
				if _, err := cb.Read(buf); err != nil {
					return
				}
			}
		}()
		go s.pingLoop(every, wait)
		for range 40 { // 40 × 25 ms: several ping intervals and timeouts
			if _, err := fmt.Fprint(cb, "<message from='bob@example.org/b' type='chat'><body>x</body></message>"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(every / 4)
		}
		if err := s.Err(); err != nil {
			t.Fatalf("ended although the server kept sending: %v", err)
		}
	})
	t.Run("the session answers pings", func(t *testing.T) {
		got := make(chan wireIQ, 1)
		ca, cb := net.Pipe()
		s := NewStream(ca, "alice@example.org/a")
		t.Cleanup(func() { s.Close(); cb.Close() })
		go func() {
			var iq wireIQ
			if xml.NewDecoder(cb).Decode(&iq) == nil {
				got <- iq
			}
		}()
		fmt.Fprint(cb, "<iq type='get' id='p1' from='example.org' to='alice@example.org/a'><ping xmlns='urn:xmpp:ping'/></iq>")
		select {
		case iq := <-got:
			if iq.Type != "result" || iq.ID != "p1" {
				t.Fatalf("answered %+v", iq)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no answer to a ping")
		}
	})
}
