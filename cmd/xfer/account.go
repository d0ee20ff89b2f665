package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"xfer/internal/config"
	"xfer/internal/session"
)

// defaultTimeout is --timeout when neither the flag nor the file sets it.
const defaultTimeout = 30 * time.Second

// accountOptions are the login flags shared by every command. They hold
// what was typed; settings (see settings.go) merges them with the
// environment and the configuration file.
type accountOptions struct {
	configFile   string
	account      string
	jid          string
	server       string
	passwordFile string
	passwordCmd  string
	tlsCA        string
	insecure     bool
	noTLS        bool
	allowPlain   bool
	timeout      time.Duration
	debugXML     bool

	flags *pflag.FlagSet // to tell a flag given from its default
}

func (a *accountOptions) register(f *pflag.FlagSet) {
	a.flags = f
	// No defaults from the environment here: precedence (flag > env >
	// file > default) is decided after parsing, in resolveSettings.
	f.StringVar(&a.configFile, "config", "", "read the configuration from `FILE` (default $XDG_CONFIG_HOME/xfer/config.toml or ~/.config/xfer/config.toml)")
	f.StringVar(&a.account, "account", "", "use the account `NAME` of the configuration file (env XFER_ACCOUNT; default: its default_account)")
	f.StringVar(&a.jid, "jid", "", "the account `JID`, user@domain[/resource] (env XFER_JID)")
	f.StringVar(&a.server, "server", "", "server `HOST:PORT` (STARTTLS) or tls://HOST:PORT (Direct TLS) (env XFER_SERVER; default: SRV records, then the JID's domain on 5222)")
	f.StringVar(&a.passwordFile, "password-file", "", "read the password from the first line of `FILE` (never on the command line)")
	f.StringVar(&a.passwordCmd, "password-cmd", "", "run \"sh -c `CMD`\" and use the first line it prints as the password, e.g. \"pass show xmpp/alice\"")
	f.StringVar(&a.tlsCA, "tls-ca", "", "also trust the CA or self-signed certificate in this PEM `FILE`")
	f.BoolVar(&a.insecure, "insecure", false, "do not verify the server's TLS certificate (DANGEROUS)")
	f.BoolVar(&a.noTLS, "no-tls", false, "do not use TLS; only to a server on a loopback address")
	f.BoolVar(&a.allowPlain, "allow-plain", false, "allow SASL PLAIN for an account that has logged in with SCRAM before")
	f.DurationVar(&a.timeout, "timeout", defaultTimeout, "limit for connecting, logging in and each server reply")
	f.BoolVar(&a.debugXML, "debug-xml", false, "print the XML stanzas to stderr (authentication is never shown)")
}

// changed reports whether the flag was given on the command line.
func (a *accountOptions) changed(name string) bool {
	if a.flags == nil {
		return false
	}
	f := a.flags.Lookup(name)
	return f != nil && f.Changed
}

// password finds the password, from the first of: --password-file,
// --password-cmd, XFER_PASSWORD, the file's password_file, password_cmd or
// password, a prompt when stdin is a terminal. Never a flag: argv is
// visible to every user. The password is never logged.
func (g *globalOptions) password(ctx context.Context, st *settings) (string, error) {
	src := st.passwordSource()
	g.logf("password from %s", src.describe())
	var pw string
	switch src.kind {
	case pwFile:
		p, perm, err := config.ReadPasswordFile(src.arg)
		if err != nil {
			return "", usageError{err}
		}
		if perm&0o077 != 0 && !g.quiet {
			fmt.Fprintf(g.stderr, g.colour.yellow("xfer: warning:")+" %s is readable by other users (mode %v); chmod 600 it\n", src.arg, perm)
		}
		if p == "" {
			return "", usageError{fmt.Errorf("%w: the first line of %s is empty", config.ErrPassword, src.arg)}
		}
		pw = p
	case pwCmd:
		p, err := config.RunPasswordCmd(ctx, src.arg, g.stderr, config.PasswordCmdTimeout)
		if err != nil {
			if errors.Is(err, config.ErrPassword) {
				return "", usageError{err}
			}
			return "", err
		}
		pw = p
	case pwValue:
		pw = src.arg
	case pwPrompt:
		in, ok := g.stdin.(*os.File)
		if !ok || !term.IsTerminal(int(in.Fd())) {
			return "", usageError{errors.New("no password: set XFER_PASSWORD, --password-file or --password-cmd, or password_cmd in the configuration file (stdin is not a terminal, so xfer does not prompt)")}
		}
		fmt.Fprintf(g.stderr, "Password for %s: ", st.JID.Value)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(g.stderr)
		if err != nil {
			return "", err
		}
		pw = string(b)
	}
	return pw, nil
}

// sessionConfig turns the settings into a session configuration.
func (g *globalOptions) sessionConfig(ctx context.Context) (session.Config, error) {
	st, err := g.settings()
	if err != nil {
		return session.Config{}, err
	}
	jid := st.JID.Value
	if jid == "" {
		msg := "no account: give --jid user@domain or set XFER_JID"
		if st.file != nil && !st.file.Missing && len(st.file.Accounts) > 0 {
			msg += fmt.Sprintf(", or choose one of %s with --account NAME or default_account", strings.Join(st.file.Names(), ", "))
		} else {
			msg += ", or configure an account (see xfer config --help)"
		}
		return session.Config{}, usageError{errors.New(msg)}
	}
	if session.Local(jid) == "" {
		return session.Config{}, usageError{fmt.Errorf("jid %q (%s) is not an account JID (want user@domain)", jid, st.JID.origin())}
	}
	pw, err := g.password(ctx, st)
	if err != nil {
		return session.Config{}, err
	}
	cfg := session.Config{
		JID: jid, Password: pw, Server: st.Server.Value,
		InsecureSkipVerify: st.Insecure.Value, AllowPlaintext: st.NoTLS.Value,
		Timeout: st.Timeout.Value, IQTimeout: st.Timeout.Value,
		RefusePlain: !g.account.allowPlain && usedSCRAM(jid),
	}
	if ca := st.TLSCA.Value; ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return cfg, usageError{fmt.Errorf("tls_ca (%s): %w", st.TLSCA.origin(), err)}
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return cfg, usageError{fmt.Errorf("tls_ca (%s): no PEM certificate in %s", st.TLSCA.origin(), ca)}
		}
		cfg.RootCAs = pool
	}
	if cfg.InsecureSkipVerify && !g.quiet {
		fmt.Fprintf(g.stderr, g.colour.red("xfer: WARNING:")+" %s: the server's certificate is not checked; anyone on the path can read the password and the files\n", st.Insecure.origin())
	}
	if g.account.debugXML {
		cfg.DebugXML = g.stderr
	}
	return cfg, nil
}

// connect logs in, returning the session and the host it reached.
func (g *globalOptions) connect(ctx context.Context) (*session.Session, string, error) {
	cfg, err := g.sessionConfig(ctx)
	if err != nil {
		return nil, "", err
	}
	return g.dial(ctx, cfg)
}

// dial logs in with a configuration made by sessionConfig: the password is
// asked for once, and a receiver that reconnects dials with it again.
func (g *globalOptions) dial(ctx context.Context, cfg session.Config) (*session.Session, string, error) {
	where := cfg.Server
	if where == "" {
		where = "the SRV records of " + session.Domain(cfg.JID)
	}
	g.logf("connecting to %s as %s", where, cfg.JID)
	if cfg.RefusePlain {
		g.logf("this account has logged in with SCRAM before: PLAIN is refused (--allow-plain allows it)")
	}
	s, err := session.Dial(ctx, cfg)
	if err != nil {
		return nil, "", downgradeHint(err)
	}
	info := s.Info()
	g.logf("the server offered SASL %s", strings.Join(info.Offered, ", "))
	g.logf("logged in as %s: %s", s.JID(), describeLogin(info))
	if session.IsSCRAM(info.Mechanism) {
		if err := rememberSCRAM(cfg.JID); err != nil {
			g.logf("cannot record the SCRAM login for downgrade protection: %v", err)
		}
	}
	host := ""
	if ep, err := session.ParseServer(info.Server); err == nil {
		host = ep.Host
	}
	return s, host, nil
}

// describeLogin says how a session logged in, for --verbose and
// probe-proxy: "SCRAM-SHA-1-PLUS (tls-unique), TLS 1.2 (STARTTLS), 127.0.0.1:5222".
func describeLogin(info session.ConnInfo) string {
	mech := info.Mechanism
	if info.ChannelBinding != "" {
		mech += " (" + info.ChannelBinding + ")"
	}
	tls := "no TLS"
	if info.TLSVersion != "" {
		kind := "STARTTLS"
		if info.DirectTLS {
			kind = "Direct TLS"
		}
		tls = info.TLSVersion + " (" + kind + ")"
	}
	return mech + ", " + tls + ", " + info.Server
}
