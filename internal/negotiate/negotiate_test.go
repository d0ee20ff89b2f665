package negotiate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"xfer/internal/session"
)

const (
	aliceJID = "alice@example.org/a"
	bobJID   = "bob@example.org/b"
)

// pipePair connects a sender (alice) and a receiver (bob) over net.Pipe.
func pipePair(t *testing.T) (alice, bob *session.Session) {
	t.Helper()
	ca, cb := net.Pipe()
	alice = session.NewStream(ca, aliceJID)
	bob = session.NewStream(cb, bobJID)
	t.Cleanup(func() { alice.Close(); bob.Close() })
	return alice, bob
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testOffer() *Offer {
	return &Offer{
		SID:      "sid-1",
		MimeType: "text/plain",
		File:     File{Name: "notes.txt", Size: 1000, Hash: "920bca8a303955e8a1e5689ae9368d75", Date: time.Date(2024, 5, 6, 7, 8, 9, 10e6, time.UTC), Desc: "notes", CanRange: true},
		Methods:  []string{MethodS5B, MethodIBB},
	}
}

func TestSendHandle(t *testing.T) {
	type decideFunc = func(ctx context.Context, from string, o *Offer) (*Accept, error)
	for _, tc := range []struct {
		name    string
		methods []string
		decide  decideFunc
		want    *Accept
		err     error // sentinel Send's error must match
		cond    string
	}{
		{"accepted", nil, func(_ context.Context, _ string, o *Offer) (*Accept, error) {
			return &Accept{Method: o.Choose(MethodIBB, MethodS5B)}, nil
		}, &Accept{Method: MethodIBB}, nil, ""},
		{"resumed", nil, func(_ context.Context, _ string, o *Offer) (*Accept, error) {
			return &Accept{Method: MethodS5B, Offset: 600}, nil
		}, &Accept{Method: MethodS5B, Offset: 600}, nil, ""},
		{"declined", nil, func(context.Context, string, *Offer) (*Accept, error) {
			return nil, Declined("")
		}, nil, ErrDeclined, session.CondForbidden},
		{"declined by sentinel", nil, func(context.Context, string, *Offer) (*Accept, error) {
			return nil, fmt.Errorf("user said no: %w", ErrDeclined)
		}, nil, ErrDeclined, session.CondForbidden},
		{"declined by nil accept", nil, func(context.Context, string, *Offer) (*Accept, error) {
			return nil, nil
		}, nil, ErrDeclined, session.CondForbidden},
		{"no common method", []string{"urn:example:carrier-pigeon"}, func(_ context.Context, _ string, o *Offer) (*Accept, error) {
			m := o.Choose(MethodS5B, MethodIBB)
			if m == "" {
				return nil, NoValidStreams()
			}
			return &Accept{Method: m}, nil
		}, nil, ErrNoValidStreams, session.CondBadRequest},
		{"receiver picks a method not offered", []string{MethodIBB}, func(context.Context, string, *Offer) (*Accept, error) {
			return &Accept{Method: MethodS5B}, nil
		}, nil, ErrNoValidStreams, session.CondBadRequest},
		{"range beyond the file", nil, func(context.Context, string, *Offer) (*Accept, error) {
			return &Accept{Method: MethodS5B, Offset: 999, Length: 2}, nil
		}, nil, ErrBadAccept, ""},
		{"internal failure", nil, func(context.Context, string, *Offer) (*Accept, error) {
			return nil, errors.New("disk on fire")
		}, nil, nil, session.CondInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice, bob := pipePair(t)
			offer := testOffer()
			if tc.methods != nil {
				offer.Methods = tc.methods
			}
			got := make(chan *Offer, 1)
			bob.Handle(session.TypeSet, NS, Handle(func(ctx context.Context, from string, o *Offer) (*Accept, error) {
				if from != aliceJID {
					t.Errorf("from = %q", from)
				}
				got <- o
				return tc.decide(ctx, from, o)
			}))
			a, err := Send(testCtx(t), alice, bobJID, offer)
			if o := <-got; !equalOffer(o, offer) {
				t.Errorf("receiver saw %+v, sender offered %+v", o, offer)
			}
			if tc.want != nil {
				if err != nil {
					t.Fatal(err)
				}
				if *a != *tc.want {
					t.Fatalf("accept %+v, want %+v", *a, *tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %+v", a)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("err = %v, want %v", err, tc.err)
			}
			var se *session.StanzaError
			if tc.cond != "" && (!errors.As(err, &se) || se.Condition != tc.cond) {
				t.Errorf("err = %v, want condition %s", err, tc.cond)
			}
		})
	}
}

// The refusals go on the wire exactly as XEP-0095 writes them, so Refusal
// can tell them apart on the other side.
func TestRefusalsOnTheWire(t *testing.T) {
	alice, bob := pipePair(t)
	bob.Handle(session.TypeSet, NS, Handle(func(context.Context, string, *Offer) (*Accept, error) {
		return nil, Declined("")
	}))
	ctx := testCtx(t)
	for _, tc := range []struct {
		name, payload string
		want          *session.StanzaError
		sentinel      error
	}{
		{"declined", qxmppOfferIBB, Declined("Offer Declined"), ErrDeclined},
		{"bad profile", strings.Replace(qxmppOfferIBB, NSFileTransfer+`"`, `urn:example:other"`, 1), BadProfile(), ErrBadProfile},
		{"no methods", offerWith(plainFile, ``), NoValidStreams(), ErrNoValidStreams},
		// A malformed offer gets a bare bad-request; through gosrc.io/xmpp
		// a no-valid-streams looks the same, hence this mapping.
		{"malformed", offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a' size='x'/>`, ibbOption), session.NewError(session.CondBadRequest, ""), ErrNoValidStreams},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := alice.SendIQ(ctx, &session.IQ{Type: session.TypeSet, To: bobJID, Payload: []byte(tc.payload)})
			var se *session.StanzaError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v", err)
			}
			if se.Condition != tc.want.Condition || se.App != tc.want.App || se.Type != tc.want.Type || (tc.want.Text != "" && se.Text != tc.want.Text) {
				t.Errorf("got %+v, want %+v", se, tc.want)
			}
			if r := Refusal(err); !errors.Is(r, tc.sentinel) || !errors.Is(r, se) {
				t.Errorf("Refusal = %v, want %v wrapping the stanza error", r, tc.sentinel)
			}
		})
	}
}

// A peer that has no SI handler answers service-unavailable.
func TestSendToPeerWithoutSI(t *testing.T) {
	alice, _ := pipePair(t)
	_, err := Send(testCtx(t), alice, bobJID, testOffer())
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, session.NewError(session.CondServiceUnavailable, "")) {
		t.Fatalf("err = %v", err)
	}
}

func TestRefusal(t *testing.T) {
	answered := func(se *session.StanzaError) error {
		// As session.SendIQ wraps it.
		return fmt.Errorf("%s answered %s: %w", bobJID, se.Condition, se)
	}
	for _, tc := range []struct {
		name string
		in   error
		want error // nil: returned unchanged
	}{
		{"declined", answered(Declined("")), ErrDeclined},
		{"not-acceptable (old Smack)", answered(session.NewError(session.CondNotAcceptable, "")), ErrDeclined},
		{"no-valid-streams", answered(NoValidStreams()), ErrNoValidStreams},
		{"bad-profile", answered(BadProfile()), ErrBadProfile},
		{"bare bad-request", answered(session.NewError(session.CondBadRequest, "")), ErrNoValidStreams},
		{"service-unavailable", answered(session.NewError(session.CondServiceUnavailable, "")), ErrUnavailable},
		{"feature-not-implemented", answered(session.NewError(session.CondFeatureNotImpl, "")), ErrUnavailable},
		{"recipient-unavailable", answered(session.NewError(session.CondRecipientUnavailable, "")), ErrUnavailable},
		{"item-not-found", answered(session.NewError(session.CondItemNotFound, "")), ErrUnavailable},
		{"internal-server-error", answered(session.NewError(session.CondInternalServerError, "")), nil},
		{"no reply", fmt.Errorf("%w from %s: %w", session.ErrNoReply, bobJID, context.DeadlineExceeded), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Refusal(tc.in)
			if tc.want == nil {
				if got != tc.in {
					t.Fatalf("got %v, want it unchanged", got)
				}
				return
			}
			if !errors.Is(got, tc.want) || !errors.Is(got, tc.in) {
				t.Fatalf("got %v, want %v wrapping %v", got, tc.want, tc.in)
			}
		})
	}
	if Refusal(nil) != nil {
		t.Fatal("Refusal(nil) != nil")
	}
}

// replyFunc is an IQSender that answers with a fixed payload.
type replyFunc func(iq *session.IQ) ([]byte, error)

func (f replyFunc) SendIQ(_ context.Context, iq *session.IQ) (*session.IQ, error) {
	p, err := f(iq)
	if err != nil {
		return nil, err
	}
	return &session.IQ{Type: session.TypeResult, From: iq.To, Payload: p}, nil
}

// Send against the answers real clients give.
func TestSendScripted(t *testing.T) {
	for _, tc := range []struct {
		name, reply string
		want        string
		err         error
	}{
		{"qxmpp", qxmppAcceptIBB, MethodIBB, nil},
		{"old smack", acceptWith(``, s5bValue+ibbValue), MethodS5B, nil},
		{"empty result", ``, "", ErrBadAccept},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sent *session.IQ
			s := replyFunc(func(iq *session.IQ) ([]byte, error) { sent = iq; return []byte(tc.reply), nil })
			a, err := Send(context.Background(), s, bobJID, testOffer())
			if sent.Type != session.TypeSet || sent.To != bobJID {
				t.Errorf("sent %+v", sent)
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || a.Method != tc.want {
				t.Fatalf("accept %+v, %v", a, err)
			}
		})
	}
	// An invalid offer never leaves.
	s := replyFunc(func(*session.IQ) ([]byte, error) { t.Fatal("sent"); return nil, nil })
	if _, err := Send(context.Background(), s, bobJID, &Offer{SID: "s"}); !errors.Is(err, ErrBadOffer) {
		t.Fatalf("err = %v", err)
	}
}
