package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"xfer/internal/session"
	"xfer/internal/transfer"
	"xfer/internal/units"
)

type receiveOptions struct {
	dir          string
	from         []string
	acceptAll    bool
	overwrite    bool
	once         bool
	count        int
	maxSize      string
	stallTimeout time.Duration
	openTimeout  time.Duration
	noDirect     bool
	hostTimeout  time.Duration
	listPartial  bool
	rmPartial    bool
	acceptLinks  bool // fetch jabber:x:oob links in messages from allowed senders
	exec         string
	execTimeout  time.Duration
	noReconnect  bool
	keepalive    time.Duration
}

func newReceiveCmd(g *globalOptions) *cobra.Command {
	o := &receiveOptions{}
	cmd := &cobra.Command{
		Use:   "receive --dir DIR",
		Short: "Receive files offered to this account",
		Long: `receive goes online and stores the files offered to this account in DIR.

By default it accepts offers only from the account's own other resources and
from the JIDs given with --from; everyone else is refused. Each file is
written to DIR/.NAME.part, checked against the declared size and MD5, then
moved to DIR/NAME; an existing file is never replaced (the new one becomes
"NAME (1).ext") unless --overwrite is given. Runs until interrupted, or for
--once / --count N files.

Left running (as a service), it survives the server restarting and the
network dropping: it pings the server (--keepalive) to notice a connection
that died silently, and when the connection is lost it says so, ends the
transfers in flight (keeping their parts) and logs in again after 1s, 2s,
4s ... up to 60s, with jitter. --once and --no-reconnect exit instead (exit
code 3). A failed first login, or a refused password later, always exits.

An interrupted transfer leaves DIR/.NAME.part (with .NAME.part.json saying
what it belongs to); when the same file is offered again, the receiver asks
for the rest only (XEP-0096 range) and checks the MD5 of the whole file.`,
		Example: `  xfer receive --dir ~/Downloads --from alice@example.org
  xfer receive --dir . --from alice@example.org --once --json
  xfer receive --dir /srv/inbox --accept-all --max-size 1GiB
  xfer receive --dir ~/Downloads --list-partial
  xfer receive --dir /srv/inbox --from alice@example.org --exec 'sha256sum "$XFER_PATH" >> /srv/inbox/LOG'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := g.settings()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("dir") && o.dir == "" {
				o.dir = st.Dir.Value
			}
			if !cmd.Flags().Changed("from") {
				o.from = st.From.Value
			}
			if o.dir == "" {
				return usageError{errors.New("receive needs --dir DIR (or dir in the config file)")}
			}
			if o.listPartial || o.rmPartial {
				return partials(g, o.dir, o.rmPartial)
			}
			maxSize := int64(0)
			if o.maxSize != "" {
				var err error
				if maxSize, err = units.ParseSize(o.maxSize); err != nil {
					return usageError{fmt.Errorf("--max-size: %w", err)}
				}
			}
			count := o.count
			if o.once {
				count = 1
			}
			ctx := cmd.Context()
			cfg, err := g.sessionConfig(ctx)
			if err != nil {
				return err
			}
			cfg.PingInterval = o.keepalive
			if o.keepalive == 0 {
				cfg.PingInterval = -1
			}
			ropts := transfer.ReceiveOptions{
				Dir: o.dir, Allow: o.from, AcceptAll: o.acceptAll, Overwrite: o.overwrite,
				MaxSize: maxSize, StallTimeout: o.stallTimeout, OpenTimeout: o.openTimeout,
				S5B:         transfer.S5BOptions{NoDirect: o.noDirect, HostTimeout: o.hostTimeout},
				AcceptLinks: o.acceptLinks,
			}
			dial := func(ctx context.Context) (transfer.Link, error) {
				s, host, err := g.dial(ctx, cfg)
				if err != nil {
					return nil, err
				}
				// A Jingle receiver offers candidates of its own too, on
				// loopback only for a local server.
				return serviceLink{s, session.IsLoopback(ctx, host)}, nil
			}
			out := newOutput(g, "receive")
			r, err := transfer.NewService(ctx, dial, ropts, out.observer(), transfer.Reconnect{Enabled: !o.once && !o.noReconnect})
			if err != nil {
				return err
			}
			// On the way out (Ctrl-C included), let transfers in progress
			// close their files (cancelling the context ends them) and the
			// last answers leave before the session closes.
			defer r.Close()
			out.info("receiving as %s into %s", r.JID(), o.dir)
			var firstErr error
			for done := 0; count == 0 || done < count; done++ {
				res, err := r.Next(ctx)
				if err != nil {
					if res == nil { // the session or the command ended
						if errors.Is(err, context.Canceled) && count == 0 {
							// The normal end of an open-ended receive (Ctrl-C,
							// systemctl stop): failures were reported as they
							// happened, and a service that stops is not one that
							// failed.
							return nil
						}
						return err
					}
					out.failed(res.Name, err)
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				out.received(res)
				if o.exec != "" {
					out.hookRan(res, o.exec, o.execTimeout, ctx)
				}
			}
			if firstErr != nil {
				return silentError{firstErr}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "directory to store received files in")
	f.StringArrayVar(&o.from, "from", nil, "accept files from this JID (repeatable)")
	f.BoolVar(&o.acceptAll, "accept-all", false, "accept files from anyone")
	f.BoolVar(&o.overwrite, "overwrite", false, "replace existing files instead of choosing a new name")
	f.BoolVar(&o.once, "once", false, "exit after one file (and, like --no-reconnect, when the connection is lost)")
	f.BoolVar(&o.noReconnect, "no-reconnect", false, "exit when the connection to the server is lost instead of logging in again")
	f.DurationVar(&o.keepalive, "keepalive", session.DefaultPingInterval, "ping the server this often, and reconnect when a ping is not answered within the same time (at most 30s); 0 turns pings off")
	f.IntVar(&o.count, "count", 0, "exit after N files")
	f.StringVar(&o.maxSize, "max-size", "", "refuse files larger than this (e.g. 2GiB)")
	f.DurationVar(&o.stallTimeout, "stall-timeout", 2*time.Minute, "fail a transfer when no data arrives for this long")
	f.DurationVar(&o.openTimeout, "open-timeout", 2*time.Minute, "how long to wait for the bytestream after accepting")
	f.BoolVar(&o.acceptLinks, "accept-links", false, "also download the http(s) links (XEP-0066 jabber:x:oob, as HTTP File Upload shares files) that allowed senders send in messages")
	f.BoolVar(&o.noDirect, "no-direct", false, "never connect to the sender directly: only through proxies")
	f.StringVar(&o.exec, "exec", "", "run this command (with sh -c) for each verified file; the file is described in XFER_PATH, XFER_NAME, XFER_FROM, XFER_SIZE, XFER_MD5, XFER_METHOD")
	f.DurationVar(&o.execTimeout, "exec-timeout", 10*time.Minute, "stop an --exec command after this long")
	f.BoolVar(&o.listPartial, "list-partial", false, "list the partial downloads in DIR (kept for resuming) and exit")
	f.BoolVar(&o.rmPartial, "remove-partial", false, "remove the partial downloads in DIR and exit")
	f.DurationVar(&o.hostTimeout, "host-timeout", 5*time.Second, "limit for each SOCKS5 streamhost's connect and handshake")
	return cmd
}

// serviceLink is a receiver's session and whether it reached a server on
// this machine (transfer.Link's ServerLoopback).
type serviceLink struct {
	*session.Session
	loopback bool
}

func (l serviceLink) ServerLoopback() bool { return l.loopback }

// partials lists (or removes) the partial downloads in dir.
func partials(g *globalOptions, dir string, remove bool) error {
	list, err := transfer.ListPartial(dir)
	if err != nil {
		return err
	}
	for _, p := range list {
		if remove {
			if err := transfer.RemovePartial(p); err != nil {
				return err
			}
		}
		if g.json {
			if err := g.emitJSON(struct {
				Type    string `json:"type"`
				Removed bool   `json:"removed"`
				transfer.Partial
			}{"partial", remove, p}); err != nil {
				return err
			}
			continue
		}
		verb := "partial"
		if remove {
			verb = "removed"
		}
		fmt.Fprintf(g.stdout, "%s\t%s\t%s of %s\tfrom %s\t%s\n", verb, p.Name, units.Human(p.Have), units.Human(p.Size), p.From, p.Modified.Format("2006-01-02 15:04"))
	}
	return nil
}
