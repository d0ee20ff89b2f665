package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"xfer/internal/probe"
	"xfer/internal/units"
)

type probeOptions struct {
	proxies     []string
	payload     string
	hostTimeout time.Duration
}

func newProbeProxyCmd(g *globalOptions) *cobra.Command {
	o := &probeOptions{}
	cmd := &cobra.Command{
		Use:   "probe-proxy",
		Short: "Find the server's SOCKS5 proxies and test each end to end",
		Long: `probe-proxy finds the SOCKS5 bytestream proxies (XEP-0065) of your server by
service discovery (or takes them from --proxy), connects to every streamhost
they advertise, and pushes --payload bytes through each with your account as
both ends, verifying every byte. It warns when a proxy advertises an address
remote users cannot reach.

Exit status 0 when at least one proxy passed, 8 when none did.`,
		Example: `  XFER_PASSWORD=secret xfer probe-proxy --jid alice@example.org
  xfer probe-proxy --jid alice@example.org --password-file ~/.xmpp-pw --proxy proxy.example.org --json
  xfer probe-proxy --jid alice@localhost --server 127.0.0.1:5222 --tls-ca server.pem --payload 1MiB`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			size, err := units.ParseSize(o.payload)
			if err != nil {
				return usageError{fmt.Errorf("--payload: %w", err)}
			}
			proxies := o.proxies
			if !cmd.Flags().Changed("proxy") {
				st, err := g.settings()
				if err != nil {
					return err
				}
				proxies = st.Proxies.Value // the account's proxies, if any
			}
			s, host, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			rep, err := probe.Run(cmd.Context(), s, probe.Options{Proxies: proxies, Payload: size, HostTimeout: o.hostTimeout, ServerHost: host})
			if rep != nil {
				if g.json {
					info := s.Info()
					if jerr := g.emitJSON(struct {
						Type  string    `json:"type"`
						Login loginJSON `json:"login"`
						*probe.Report
					}{"probe", loginJSON{info.Server, info.TLSVersion, info.DirectTLS, info.Mechanism, info.ChannelBinding}, rep}); jerr != nil {
						return jerr
					}
				} else {
					fmt.Fprintf(g.stdout, "logged in with %s\n", describeLogin(s.Info()))
					printProbe(g, rep)
				}
				if err != nil {
					return silentError{err}
				}
			}
			return err
		},
	}
	cmd.Flags().StringArrayVar(&o.proxies, "proxy", nil, "test this proxy JID instead of discovering them (repeatable; default: the account's proxies in the configuration file)")
	cmd.Flags().StringVar(&o.payload, "payload", "8MiB", "bytes to push through each proxy (e.g. 512KiB, 8MiB)")
	cmd.Flags().DurationVar(&o.hostTimeout, "host-timeout", 5*time.Second, "limit for each streamhost's connect, handshake and activation")
	return cmd
}

// loginJSON is how probe-proxy --json says the account logged in.
type loginJSON struct {
	Server         string `json:"server"`
	TLS            string `json:"tls"` // "TLS 1.3", or "" without TLS
	DirectTLS      bool   `json:"direct_tls"`
	Mechanism      string `json:"mechanism"`
	ChannelBinding string `json:"channel_binding,omitempty"`
}

func printProbe(g *globalOptions, rep *probe.Report) {
	w := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "PROXY\tSTREAMHOST\tCONNECT\tSOCKS5\tTHROUGHPUT\tRESULT\n")
	for _, p := range rep.Proxies {
		if len(p.Streamhosts) == 0 {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\tFAIL: %s\n", p.JID, p.Error)
		}
		for _, h := range p.Streamhosts {
			result := "ok, bytes verified"
			if h.Error != "" {
				result = "FAIL: " + h.Error
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", p.JID, joinHostPort(h.Host, h.Port), msOrDash(h.ConnectMS), msOrDash(h.HandshakeMS), rate(h.MBPerSec), result)
		}
	}
	w.Flush()
	for _, warn := range rep.Warnings {
		fmt.Fprintf(g.stderr, "%s %s\n", g.colour.yellow("xfer: warning:"), warn)
	}
	if rep.OK {
		fmt.Fprintln(g.stdout, "at least one proxy works")
	} else if len(rep.Proxies) > 0 {
		fmt.Fprintln(g.stdout, "no proxy passed the self-test")
	}
}

func joinHostPort(h string, p int) string {
	if strings.Contains(h, ":") {
		return fmt.Sprintf("[%s]:%d", h, p)
	}
	return fmt.Sprintf("%s:%d", h, p)
}

func msOrDash(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", v)
}

func rate(mbps float64) string {
	if mbps == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MB/s", mbps)
}
