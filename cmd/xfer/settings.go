package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"xfer/internal/config"
)

// source says where a setting came from.
type source string

const (
	fromFlag    source = "flag"
	fromEnv     source = "env"
	fromConfig  source = "config"
	fromDefault source = "default"
)

// value is one effective setting, where it came from, and the name it had
// there: the flag (--server), the variable (XFER_SERVER) or the key
// (accounts.alice.server).
type value[T any] struct {
	Value  T
	Source source
	Name   string
}

// origin names where the value came from, for messages.
func (v value[T]) origin() string {
	switch v.Source {
	case fromFlag:
		return v.Name
	case fromEnv:
		return "env " + v.Name
	case fromConfig:
		return "config " + v.Name
	}
	return "default"
}

// settings is the effective configuration of the selected account. Each
// value comes from the first of: a flag given on the command line, an
// environment variable (XFER_JID, XFER_SERVER, XFER_PASSWORD,
// XFER_ACCOUNT), the account's section of the configuration file, the
// default.
//
// Proxies, Dir and From come from the file only: the commands' own flags
// (send/probe-proxy --proxy, receive --dir and --from) win over them when
// given.
type settings struct {
	file   *config.File    // never nil; Missing when there is none
	acct   *config.Account // nil when no account is selected
	unused string          // why the default_account is not used, if it is not

	Account      value[string]
	JID          value[string]
	Server       value[string]
	TLSCA        value[string]
	Insecure     value[bool]
	NoTLS        value[bool]
	Timeout      value[time.Duration]
	Password     value[string] // XFER_PASSWORD or the file's password: never printed
	PasswordFile value[string]
	PasswordCmd  value[string]
	Proxies      value[[]string] // SOCKS5 proxy JIDs for send and probe-proxy
	Dir          value[string]   // default --dir of receive
	From         value[[]string] // default --from of receive
}

// settings loads the configuration file (once) and merges it with the
// flags and the environment. Errors in the file are usage errors.
func (g *globalOptions) settings() (*settings, error) {
	if g.resolved != nil {
		return g.resolved, nil
	}
	st, err := resolveSettings(&g.account, os.Getenv)
	if err != nil {
		return nil, err
	}
	g.resolved = st
	return st, nil
}

func resolveSettings(a *accountOptions, getenv func(string) string) (*settings, error) {
	if a.changed("password-file") && a.changed("password-cmd") {
		return nil, usageError{errors.New("give --password-file or --password-cmd, not both")}
	}
	if a.changed("config") && a.configFile == "" {
		return nil, usageError{errors.New("--config needs a FILE")}
	}
	file, err := config.Find(a.configFile)
	if err != nil {
		return nil, usageError{err}
	}
	st := &settings{file: file}

	switch {
	case a.changed("account"):
		st.Account = value[string]{a.account, fromFlag, "--account"}
	case getenv("XFER_ACCOUNT") != "":
		st.Account = value[string]{getenv("XFER_ACCOUNT"), fromEnv, "XFER_ACCOUNT"}
	case file.DefaultAccount != "":
		st.Account = value[string]{file.DefaultAccount, fromConfig, "default_account"}
	default:
		st.Account = value[string]{Source: fromDefault}
	}
	if st.Account.Source != fromDefault && st.Account.Value == "" {
		return nil, usageError{fmt.Errorf("%s: empty account name", st.Account.origin())}
	}
	if st.acct, err = file.Account(st.Account.Value); err != nil {
		return nil, usageError{fmt.Errorf("%w (%s)", err, st.Account.origin())}
	}
	st.merge(a, getenv, st.acct)

	// The file's account must not lend its password (or its server) to
	// another account: with --jid or XFER_JID naming a different one, the
	// default_account is not used, and an account chosen by name is an
	// error.
	if st.acct != nil && st.acct.Has("jid") && st.JID.Source != fromConfig && !sameAccount(st.JID.Value, st.acct.JID) {
		if st.Account.Source != fromConfig {
			return nil, usageError{fmt.Errorf("%s %q is not the account %q (%s): give one or the other",
				st.JID.origin(), st.JID.Value, st.acct.Name, st.acct.JID)}
		}
		st.unused = fmt.Sprintf("default_account %q is not used: %s names another account", st.acct.Name, st.JID.origin())
		st.acct = nil
		st.Account = value[string]{Source: fromDefault}
		st.merge(a, getenv, nil)
	}
	return st, nil
}

// sameAccount reports whether two JIDs name the same account: the same
// bare JID, whatever the resources.
func sameAccount(a, b string) bool {
	a, _, _ = strings.Cut(a, "/")
	b, _, _ = strings.Cut(b, "/")
	return strings.EqualFold(a, b)
}

// merge fills the values from the flags, the environment and the account
// section acct (nil for none).
func (st *settings) merge(a *accountOptions, getenv func(string) string, acct *config.Account) {
	if acct == nil {
		acct = &config.Account{} // Has is false for every key
	}
	key := func(k string) string { return "accounts." + acct.Name + "." + k }

	// str picks a string: the flag (when given), the variable (when set
	// and not empty), the file (when the key is there), else "".
	str := func(flag, env, k, flagVal, cfgVal string) value[string] {
		switch {
		case flag != "" && a.changed(flag):
			return value[string]{flagVal, fromFlag, "--" + flag}
		case env != "" && getenv(env) != "":
			return value[string]{getenv(env), fromEnv, env}
		case acct.Has(k):
			return value[string]{cfgVal, fromConfig, key(k)}
		}
		return value[string]{Source: fromDefault}
	}
	boolean := func(flag, k string, flagVal, cfgVal bool) value[bool] {
		switch {
		case a.changed(flag):
			return value[bool]{flagVal, fromFlag, "--" + flag}
		case acct.Has(k):
			return value[bool]{cfgVal, fromConfig, key(k)}
		}
		return value[bool]{Source: fromDefault}
	}
	list := func(k string, cfgVal []string) value[[]string] {
		if acct.Has(k) {
			return value[[]string]{cfgVal, fromConfig, key(k)}
		}
		return value[[]string]{Source: fromDefault}
	}

	st.JID = str("jid", "XFER_JID", "jid", a.jid, acct.JID)
	st.Server = str("server", "XFER_SERVER", "server", a.server, acct.Server)
	st.TLSCA = str("tls-ca", "", "tls_ca", a.tlsCA, acct.TLSCA)
	st.Insecure = boolean("insecure", "insecure", a.insecure, acct.Insecure)
	st.NoTLS = boolean("no-tls", "no_tls", a.noTLS, acct.NoTLS)
	switch {
	case a.changed("timeout"):
		st.Timeout = value[time.Duration]{a.timeout, fromFlag, "--timeout"}
	case acct.Has("timeout"):
		st.Timeout = value[time.Duration]{acct.Timeout.Duration, fromConfig, key("timeout")}
	default:
		st.Timeout = value[time.Duration]{defaultTimeout, fromDefault, ""}
	}
	st.Password = str("", "XFER_PASSWORD", "password", "", acct.Password)
	st.PasswordFile = str("password-file", "", "password_file", a.passwordFile, acct.PasswordFile)
	st.PasswordCmd = str("password-cmd", "", "password_cmd", a.passwordCmd, acct.PasswordCmd)
	st.Proxies = list("proxies", acct.Proxies)
	st.Dir = str("", "", "dir", "", acct.Dir)
	st.From = list("from", acct.From)
}

// passwordKind is where the password will be read from.
type passwordKind int

const (
	pwPrompt passwordKind = iota // a no-echo prompt, when stdin is a terminal
	pwFile                       // the first line of a file
	pwCmd                        // the first line printed by a command
	pwValue                      // XFER_PASSWORD or the file's password
)

type passwordSource struct {
	kind passwordKind
	arg  string // the file, the command or the password itself
	from value[string]
}

func (p passwordSource) describe() string {
	switch p.kind {
	case pwFile:
		return fmt.Sprintf("the file %s (%s)", p.arg, p.from.origin())
	case pwCmd:
		return fmt.Sprintf("the command %q (%s)", p.arg, p.from.origin())
	case pwValue:
		return p.from.origin()
	}
	return "a prompt, when stdin is a terminal"
}

// passwordSource picks the first of --password-file, --password-cmd,
// XFER_PASSWORD, the file's password_file, password_cmd, password, and a
// prompt.
func (st *settings) passwordSource() passwordSource {
	candidates := []struct {
		v    value[string]
		kind passwordKind
	}{
		{st.PasswordFile, pwFile}, {st.PasswordCmd, pwCmd}, {st.Password, pwValue},
	}
	for _, src := range []source{fromFlag, fromEnv, fromConfig} {
		for _, c := range candidates {
			if c.v.Source == src && c.v.Value != "" {
				return passwordSource{c.kind, c.v.Value, c.v}
			}
		}
	}
	return passwordSource{kind: pwPrompt}
}
