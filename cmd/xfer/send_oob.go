package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"xfer/internal/oob"
	"xfer/internal/session"
	"xfer/internal/transfer"
)

// checkOOB validates the out-of-band flags of xfer send.
func (o *sendOptions) checkOOB(cmd *cobra.Command) error {
	if (o.url != "" || o.listen != "") && o.method != "oob" {
		return usageError{errors.New("--url and --listen go with --method oob")}
	}
	if o.url != "" {
		if _, err := oob.CheckURL(o.url); err != nil {
			return usageError{fmt.Errorf("--url: %w", err)}
		}
		if o.listen != "" {
			return usageError{errors.New("--url offers an existing URL: there is nothing to --listen for")}
		}
	}
	return nil
}

// recipient resolves whom to send to. SI and iq:oob need a full JID (a
// bare one becomes the resource that accepts file transfers); an upload
// link goes in a message, so a bare JID is fine; with auto, a bare JID
// whose online resources take no SI gets the upload (Send decides), and
// one with nobody online the usual error.
func (o *sendOptions) recipient(ctx context.Context, s *session.Session, to string) (string, error) {
	if o.method == "upload" {
		// A message needs no particular resource; with --wait-online,
		// wait for one that is up (an xfer receiver announces itself).
		if o.waitOnline > 0 {
			if full, err := transfer.ResolveRecipient(ctx, s, to, o.waitOnline); err == nil {
				return full, nil
			}
		}
		return to, nil
	}
	full, err := transfer.ResolveRecipient(ctx, s, to, o.waitOnline)
	if err != nil && o.method == "auto" && session.Resource(to) == "" && errors.Is(err, transfer.ErrNoRecipient) && len(s.Online(to)) > 0 {
		return to, nil // Send decides: upload when the server offers it
	}
	return full, err
}
