package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"xfer/internal/session"
)

// accountOptions are the login flags shared by every command.
type accountOptions struct {
	jid          string
	server       string
	passwordFile string
	tlsCA        string
	insecure     bool
	noTLS        bool
	timeout      time.Duration
	debugXML     bool
}

func (a *accountOptions) register(f *pflag.FlagSet) {
	f.StringVar(&a.jid, "jid", os.Getenv("XFER_JID"), "account JID, user@domain[/resource] (env XFER_JID)")
	f.StringVar(&a.server, "server", os.Getenv("XFER_SERVER"), "server HOST:PORT (env XFER_SERVER; default: SRV record, then the JID's domain on 5222)")
	f.StringVar(&a.passwordFile, "password-file", "", "read the password from the first line of FILE (env XFER_PASSWORD otherwise; never on the command line)")
	f.StringVar(&a.tlsCA, "tls-ca", "", "also trust the CA or self-signed certificate in this PEM FILE")
	f.BoolVar(&a.insecure, "insecure", false, "do not verify the server's TLS certificate (DANGEROUS)")
	f.BoolVar(&a.noTLS, "no-tls", false, "allow a session without TLS; only to a server on a loopback address")
	f.DurationVar(&a.timeout, "timeout", 30*time.Second, "limit for connecting, logging in and each server reply")
	f.BoolVar(&a.debugXML, "debug-xml", false, "print the XML stanzas to stderr (authentication is never shown)")
}

// password finds the password: XFER_PASSWORD, --password-file, or a prompt
// when stdin is a terminal. Never a flag: argv is visible to every user.
func (g *globalOptions) password() (string, error) {
	if p := os.Getenv("XFER_PASSWORD"); p != "" && g.account.passwordFile == "" {
		return p, nil
	}
	if f := g.account.passwordFile; f != "" {
		st, err := os.Stat(f)
		if err != nil {
			return "", usageError{fmt.Errorf("password file: %w", err)}
		}
		if st.Mode().Perm()&0o077 != 0 && !g.quiet {
			fmt.Fprintf(g.stderr, "xfer: warning: %s is readable by other users (mode %v); chmod 600 it\n", f, st.Mode().Perm())
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return "", usageError{fmt.Errorf("password file: %w", err)}
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimRight(line, "\r"), nil
	}
	if in, ok := g.stdin.(*os.File); ok && term.IsTerminal(int(in.Fd())) {
		fmt.Fprintf(g.stderr, "Password for %s: ", g.account.jid)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(g.stderr)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	return "", usageError{errors.New("no password: set XFER_PASSWORD or --password-file (stdin is not a terminal, so xfer does not prompt)")}
}

// sessionConfig turns the flags into a session configuration.
func (g *globalOptions) sessionConfig() (session.Config, error) {
	a := &g.account
	if a.jid == "" {
		return session.Config{}, usageError{errors.New("no account: give --jid user@domain or set XFER_JID")}
	}
	if session.Local(a.jid) == "" {
		return session.Config{}, usageError{fmt.Errorf("--jid %q is not an account JID (want user@domain)", a.jid)}
	}
	pw, err := g.password()
	if err != nil {
		return session.Config{}, err
	}
	cfg := session.Config{
		JID: a.jid, Password: pw, Server: a.server,
		InsecureSkipVerify: a.insecure, AllowPlaintext: a.noTLS,
		Timeout: a.timeout, IQTimeout: a.timeout,
	}
	if a.tlsCA != "" {
		pem, err := os.ReadFile(a.tlsCA)
		if err != nil {
			return cfg, usageError{fmt.Errorf("--tls-ca: %w", err)}
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return cfg, usageError{fmt.Errorf("--tls-ca: no PEM certificate in %s", a.tlsCA)}
		}
		cfg.RootCAs = pool
	}
	if a.insecure && !g.quiet {
		fmt.Fprintln(g.stderr, "xfer: WARNING: --insecure: the server's certificate is not checked; anyone on the path can read the password and the files")
	}
	if a.debugXML {
		cfg.DebugXML = g.stderr
	}
	return cfg, nil
}

// connect logs in, returning the session and the host it reached.
func (g *globalOptions) connect(ctx context.Context) (*session.Session, string, error) {
	cfg, err := g.sessionConfig()
	if err != nil {
		return nil, "", err
	}
	addr := session.ServerAddress(ctx, cfg.JID, cfg.Server)
	host, _, _ := net.SplitHostPort(addr)
	cfg.Server = addr
	g.logf("connecting to %s as %s", addr, cfg.JID)
	s, err := session.Dial(ctx, cfg)
	if err != nil {
		return nil, host, err
	}
	g.logf("logged in as %s", s.JID())
	return s, host, nil
}
