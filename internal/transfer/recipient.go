package transfer

import (
	"context"
	"fmt"
	"sort"
	"time"

	"xfer/internal/disco"
	"xfer/internal/negotiate"
	"xfer/internal/session"
)

// ResolveRecipient finds whom to send to. A bare JID becomes the full JID
// of an available resource that accepts SI file transfer (known from
// presence, so the contact needs a subscription); a full JID is taken as
// it is. With wait > 0 it waits that long for such a resource to appear: for
// a full JID, until it answers service discovery with SI file transfer.
func ResolveRecipient(ctx context.Context, s Session, jid string, wait time.Duration) (string, error) {
	full := session.Resource(jid) != ""
	if full && wait <= 0 {
		return jid, nil
	}
	if !full && wait < presenceGrace {
		// Contacts' presence arrives just after login: give it a moment.
		wait = presenceGrace
	}
	deadline := time.Now().Add(wait)
	// Contacts' presence comes a few milliseconds after login: look again
	// every 5 ms for a moment (a look at presence already received costs
	// nothing), then less and less often.
	start, pause := time.Now(), 5*time.Millisecond
	for {
		candidates := []string{jid}
		if !full {
			online := s.Online(jid)
			sort.Slice(online, func(i, j int) bool { return online[i].Priority > online[j].Priority })
			candidates = candidates[:0]
			for _, p := range online {
				if p.From != s.JID() {
					candidates = append(candidates, p.From)
				}
			}
		}
		// Asked again on every round: a receiver announces itself
		// before it has registered its handlers.
		for _, c := range candidates {
			if acceptsFiles(ctx, s, c) {
				return c, nil
			}
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(pause):
		}
		if time.Since(start) > 200*time.Millisecond {
			pause = min(2*pause, 300*time.Millisecond)
		}
	}
	if full {
		return "", fmt.Errorf("%w: %s did not come online with file transfer support within %v", ErrNoRecipient, jid, wait)
	}
	return "", fmt.Errorf("%w: %s has no online resource that accepts file transfers (is it in your roster with a presence subscription, and online?); give a full JID such as %s/RESOURCE", ErrNoRecipient, jid, jid)
}

// presenceGrace is how long a bare JID waits at least for presence.
const presenceGrace = 3 * time.Second

// discoAttemptTimeout bounds one disco#info query of ResolveRecipient.
const discoAttemptTimeout = 5 * time.Second

func acceptsFiles(ctx context.Context, s Session, jid string) bool {
	// Each query is bounded on its own so that one lost query (an IQ that
	// reaches a client while its XMPP library is still setting up the
	// session can go unanswered) is asked again instead of using up the
	// whole wait.
	ctx, cancel := context.WithTimeout(ctx, discoAttemptTimeout)
	defer cancel()
	info, err := disco.GetInfo(ctx, s, jid)
	return err == nil && (info.HasFeature(negotiate.NS) && info.HasFeature(negotiate.NSFileTransfer) || speaksJingle(info))
}
