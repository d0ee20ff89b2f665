package jingle

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"xfer/internal/session"
)

// Offers xfer cannot take are declined with the reason XEP-0166 names, and
// what it can take is read as the peer wrote it.
func TestOfferValidation(t *testing.T) {
	const file = `<file><name>a.txt</name><size>5</size><mediaType>text/plain</mediaType></file>`
	for _, tc := range []struct {
		name    string
		content string
		reason  string // "" = accepted by File()
		wantErr error
	}{
		{"conversations style: mediaType, no hash", `<description xmlns='` + NSFileTransfer + `'>` + file + `</description><transport xmlns='` + NSIBB + `' sid='i' block-size='4096'/>`, "", nil},
		{"JET-OMEMO", `<description xmlns='` + NSFileTransfer + `'>` + file + `</description><transport xmlns='` + NSIBB + `' sid='i'/><security xmlns='` + NSJET + `' name='a' cipher='urn:xmpp:ciphers:aes-128-gcm-nopadding:0' type='urn:xmpp:omemo:1'/>`, ReasonSecurityError, ErrSecurity},
		{"file-transfer:4", `<description xmlns='urn:xmpp:jingle:apps:file-transfer:4'>` + file + `</description><transport xmlns='` + NSIBB + `' sid='i'/>`, ReasonUnsupportedApps, ErrUnsupported},
		{"unknown transport", `<description xmlns='` + NSFileTransfer + `'>` + file + `</description><transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'/>`, ReasonUnsupportedTransports, ErrUnsupported},
		{"no size", `<description xmlns='` + NSFileTransfer + `'><file><name>a</name></file></description><transport xmlns='` + NSIBB + `' sid='i'/>`, ReasonFailedApplication, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice, _, _, mb, _ := pair(t)
			terminated := make(chan string, 1)
			alice.Handle(session.TypeSet, NS, func(_ context.Context, iq *session.IQ) ([]byte, error) {
				if j, err := Parse(iq.Payload); err == nil && j.Action == ActionSessionTerminate && j.Reason != nil {
					terminated <- j.Reason.Condition
				}
				return nil, nil
			})
			files := make(chan FileInfo, 1)
			errs := make(chan error, 1)
			mb.Listen(func(in *Incoming) {
				f, err := in.File()
				if err != nil {
					var oe *OfferError
					errors.As(err, &oe)
					in.Decline(context.Background(), oe.Reason, oe.Text)
				} else {
					in.Decline(context.Background(), ReasonDecline, "")
				}
				files <- f
				errs <- err
			})
			payload := fmt.Sprintf(`<jingle xmlns='%s' action='session-initiate' sid='s1' initiator='%s'><content creator='initiator' name='c'>%s</content></jingle>`, NS, aliceJID, tc.content)
			if _, err := alice.SendIQ(testCtx(t, 5*time.Second), &session.IQ{Type: session.TypeSet, To: bobJID, Payload: []byte(payload)}); err != nil {
				t.Fatal(err)
			}
			f, err := <-files, <-errs
			want := tc.reason
			if want == "" {
				want = ReasonDecline
				if err != nil || f.Name != "a.txt" || f.Size != 5 || f.MediaType != "text/plain" || f.Hash != nil {
					t.Fatalf("File() = %+v, %v", f, err)
				}
			} else if !errors.Is(err, tc.wantErr) {
				t.Fatalf("File() error %v, want %v", err, tc.wantErr)
			}
			select {
			case got := <-terminated:
				if got != want {
					t.Fatalf("terminated with %s, want %s", got, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no session-terminate")
			}
		})
	}
}
