package jingle

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"xfer/internal/s5b"
	"xfer/internal/session"
)

// A responder that reports candidate-used before its session-accept (as
// Libervia 0.9 does) and offers no candidate of its own: the initiator
// takes the report whenever it comes.
func TestCandidateUsedBeforeAccept(t *testing.T) {
	alice, bob, ma, _, _ := pair(t)
	got := make(chan []byte, 1)
	bob.Handle(session.TypeSet, NS, func(ctx context.Context, iq *session.IQ) ([]byte, error) {
		j, err := Parse(iq.Payload)
		if err != nil || j.Action != ActionSessionInitiate {
			return nil, nil
		}
		go scriptedResponder(t, bob, j, got)
		return nil, nil
	})
	srv, direct := directServer(t)
	data := randomData(t, 100_000)
	ctx := testCtx(t, 20*time.Second)
	o, err := Offer(ctx, ma, bobJID, FileInfo{Name: "f", Size: int64(len(data)), Hash: digestOf(data)}, OfferOptions{Transports: Transports{Server: srv, Direct: direct}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := o.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Method != "s5b" || st.Via != "direct" {
		t.Fatalf("stream %s via %s", st.Method, st.Via)
	}
	st.Write(data)
	st.Close()
	if err := o.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("responder read %d bytes", len(b))
	}
	_ = alice
}

// scriptedResponder connects to the initiator's direct candidate, says so,
// then accepts, reads the file and terminates with success.
func scriptedResponder(t *testing.T, bob *session.Session, offer *Jingle, got chan<- []byte) {
	ctx := testCtx(t, 10*time.Second)
	tr := offer.Contents[0].S5B
	c := tr.Candidates[0]
	conn, err := s5b.Dial(ctx, s5b.Streamhost{JID: c.JID, Host: c.Host, Port: c.Port}, s5b.DstAddr(tr.SID, aliceJID, bobJID), time.Second)
	if err != nil {
		t.Error(err)
		got <- nil
		return
	}
	defer conn.Close()
	send := func(j *Jingle) {
		j.SID = offer.SID
		if _, err := bob.SendIQ(ctx, &session.IQ{Type: session.TypeSet, To: aliceJID, Payload: j.Marshal()}); err != nil {
			t.Error(err)
		}
	}
	ct := offer.Contents[0]
	send(&Jingle{Action: ActionTransportInfo, Contents: []Content{{Creator: ct.Creator, Name: ct.Name, S5B: &S5BTransport{SID: tr.SID, CandidateUsed: &CandidateID{CID: c.CID}}}}})
	send(&Jingle{Action: ActionSessionAccept, Responder: bobJID, Contents: []Content{{Creator: ct.Creator, Name: ct.Name, Description: &Description{File: &File{}}, S5B: &S5BTransport{SID: tr.SID}}}})
	b, _ := io.ReadAll(conn)
	send(&Jingle{Action: ActionSessionTerminate, Reason: &Reason{Condition: ReasonSuccess}})
	got <- b
}
