package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"xfer/internal/session"
	"xfer/internal/transfer"
)

type sendOptions struct {
	method        string
	name          string
	desc          string
	acceptTimeout time.Duration
	stallTimeout  time.Duration
	waitOnline    time.Duration
	ibbBlockSize  int
	ibbWindow     int
	noDirect      bool
	directAddrs   []string
	listenPort    int
	proxies       []string
	hostTimeout   time.Duration
	noResume      bool
	parallel      int
	url           string // --method oob: offer this URL instead of serving the file
	listen        string // --method oob: where our HTTP server listens
}

func newSendCmd(g *globalOptions) *cobra.Command {
	o := &sendOptions{}
	cmd := &cobra.Command{
		Use:   "send [flags] FILE... JID",
		Short: "Send files to a contact",
		Long: `send offers each FILE to JID with SI File Transfer (XEP-0096), waits for the
contact to accept, and sends it, one file after another (or --parallel N
at once). The offer carries
the file's size and MD5 so that the receiver can verify it.

JID may be a full JID (user@domain/resource), or a bare one (user@domain):
then the contact must be in your roster with a presence subscription, and
the first online resource that accepts file transfers is chosen.`,
		Example: `  xfer send report.pdf bob@example.org
  xfer send --desc "the photos" *.jpg bob@example.org/laptop
  xfer send --name notes.txt --method ibb /tmp/x.txt bob@example.org --json
  xfer send --no-direct --proxy proxy.example.org big.iso bob@example.org/laptop`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError{errors.New("send needs at least one FILE and a JID")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			files, to := args[:len(args)-1], args[len(args)-1]
			st, err := g.settings()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("proxy") {
				o.proxies = st.Proxies.Value
			}
			if session.Local(to) == "" && session.Resource(to) == "" {
				return usageError{fmt.Errorf("%q is not a contact's JID (want user@domain[/resource])", to)}
			}
			if o.name != "" && len(files) > 1 {
				return usageError{errors.New("--name applies to a single FILE")}
			}
			if !slices.Contains(transfer.Methods, o.method) {
				return usageError{fmt.Errorf("--method %q: want %s", o.method, strings.Join(transfer.Methods, ", "))}
			}
			if err := o.checkOOB(cmd); err != nil {
				return err
			}
			if o.url != "" && len(files) > 1 {
				return usageError{errors.New("--url applies to a single FILE")}
			}
			ctx := cmd.Context()
			out := newOutput(g, "send")
			sd := &transfer.Sender{Obs: out.observer(), Opts: transfer.SendOptions{Method: o.method}}
			// The offers need each file's hash (MD5 for SI, SHA-256 for
			// Jingle, what the method needs): read the files while logging in.
			sd.Prehash(ctx, files)
			s, host, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			out.event(transfer.Event{Type: "online", Direction: "send", Peer: s.JID(), Time: time.Now()})
			full, err := o.recipient(ctx, s, to)
			if err != nil {
				return err
			}
			g.logf("sending to %s", full)
			sd.S, sd.Opts = s, transfer.SendOptions{
				Method: o.method, Name: o.name, Desc: o.desc, NoResume: o.noResume,
				AcceptTimeout: o.acceptTimeout, StallTimeout: o.stallTimeout,
				OOB: transfer.OOBOptions{URL: o.url, Listen: o.listen},
			}
			sd.Opts.IBB.BlockSize, sd.Opts.IBB.Window = o.ibbBlockSize, o.ibbWindow
			sd.Opts.S5B = transfer.S5BOptions{
				NoDirect: o.noDirect, DirectAddrs: o.directAddrs, ListenPort: o.listenPort,
				Proxies: o.proxies, HostTimeout: o.hostTimeout,
				ServerLoopback: session.IsLoopback(ctx, host),
			}
			if o.parallel > 1 {
				out.noBars() // one terminal cannot show several bars cleanly
			}
			var (
				mu       sync.Mutex
				firstErr error
				wg       sync.WaitGroup
				slots    = make(chan struct{}, max(o.parallel, 1))
			)
			for _, f := range files {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
				}
				if ctx.Err() != nil {
					break
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-slots }()
					res, err := sd.Send(ctx, full, f)
					if err != nil {
						out.failed(f, err)
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						return
					}
					out.sent(res)
				}()
			}
			wg.Wait()
			if firstErr == nil && ctx.Err() != nil {
				firstErr = ctx.Err()
			}
			if firstErr != nil {
				return silentError{firstErr}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.method, "method", "auto", "auto (Jingle file transfer when the contact speaks it, else SI; SOCKS5 first, in-band as the fallback; HTTP upload for a contact with neither), jingle, jingle-s5b, jingle-ibb (Jingle, XEP-0234, over both or one transport), si, s5b, ibb (SI, XEP-0096, over both or one), oob (the contact fetches it from this machine over HTTP) or upload (HTTP File Upload to your server, then a link)")
	f.StringVar(&o.url, "url", "", "with --method oob: offer this http(s) URL instead of serving the file")
	f.StringVar(&o.listen, "listen", "", "with --method oob: HOST:PORT for the HTTP server (default: a free port, on 127.0.0.1 when the XMPP server is on loopback)")
	f.StringVar(&o.name, "name", "", "offer the file under this name")
	f.StringVar(&o.desc, "desc", "", "a description shown to the receiver")
	f.DurationVar(&o.acceptTimeout, "accept-timeout", 5*time.Minute, "how long to wait for the contact to accept")
	f.DurationVar(&o.stallTimeout, "stall-timeout", 2*time.Minute, "fail when no data moves for this long")
	f.DurationVar(&o.waitOnline, "wait-online", 0, "wait this long for the contact to come online with file transfer support")
	f.IntVar(&o.ibbBlockSize, "ibb-block-size", 0, "in-band block size in bytes, at most 65535 (default: what fills Prosody's 8 KiB reads, about 5900, sent as whitespace-padded 8 KiB TLS records; 4096, XEP-0047's recommendation, where the JIDs are too long for that; lowered when the peer asks)")
	f.IntVar(&o.ibbWindow, "ibb-window", 0, "fixed in-band window: chunks in flight before waiting for acknowledgements (default: adaptive, from 16 chunks up to 1 MiB in flight)")
	f.IntVar(&o.parallel, "parallel", 1, "send up to N files at once")
	f.BoolVar(&o.noResume, "no-resume", false, "do not let the receiver resume a partial copy: send the whole file again")
	f.BoolVar(&o.noDirect, "no-direct", false, "offer no direct connection to this machine: proxies only")
	f.StringArrayVar(&o.directAddrs, "direct-addr", nil, "also advertise HOST[:PORT] for direct connections, e.g. a public or NAT-mapped address (repeatable)")
	f.IntVar(&o.listenPort, "listen-port", 0, "port for direct connections (default: any free port), e.g. to match a port forward")
	f.StringArrayVar(&o.proxies, "proxy", nil, "use this SOCKS5 proxy JID instead of the server's (repeatable)")
	f.DurationVar(&o.hostTimeout, "host-timeout", 5*time.Second, "limit for each SOCKS5 streamhost's connect and handshake")
	return cmd
}
