// Package config reads xfer's configuration file: a TOML file of named
// accounts, so that a login needs no flags. It finds the file, rejects keys
// it does not know (a typo must not be silently ignored), refuses a file
// that holds a password and is readable by other users, and runs a
// password command. It does not decide precedence: flags and environment
// variables win over the file, and cmd/xfer merges them.
//
//	default_account = "alice"
//	[accounts.alice]
//	jid = "alice@example.org/laptop"
//	server = "xmpp.example.org:5222"
//	tls_ca = "/path/to/ca.pem"
//	password_cmd = "pass show xmpp/alice"
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Errors the file can have; each is wrapped with the file's name and the
// key concerned.
var (
	ErrUnknownKey  = errors.New("unknown key")
	ErrInvalid     = errors.New("invalid value")
	ErrPermissions = errors.New("contains a password and is readable by other users")
	ErrNoAccount   = errors.New("no such account")
)

// Keys of an account section, in the order they are documented and shown.
var Keys = []string{
	"jid", "server", "tls_ca", "insecure", "no_tls", "timeout",
	"password", "password_file", "password_cmd", "proxies", "dir", "from",
}

// Account is one [accounts.NAME] section. The key names are the flags'
// names with underscores. Paths (tls_ca, password_file, dir) are absolute
// after Load: "~/" is the home directory, and a relative path is relative
// to the directory of the configuration file.
type Account struct {
	Name string `toml:"-"`

	JID          string   `toml:"jid"`
	Server       string   `toml:"server"`
	TLSCA        string   `toml:"tls_ca"`
	Insecure     bool     `toml:"insecure"`
	NoTLS        bool     `toml:"no_tls"`
	Timeout      Duration `toml:"timeout"`
	Password     string   `toml:"password"`
	PasswordFile string   `toml:"password_file"`
	PasswordCmd  string   `toml:"password_cmd"`
	Proxies      []string `toml:"proxies"` // SOCKS5 proxy JIDs (send, probe-proxy)
	Dir          string   `toml:"dir"`     // default download directory (receive)
	From         []string `toml:"from"`    // senders accepted by receive

	set map[string]bool
}

// Has reports whether the section sets key (one of Keys), so that a value
// written in the file, even false or "", can be told from an absent one.
func (a *Account) Has(key string) bool { return a != nil && a.set[key] }

// Duration is a TOML string such as "30s" or "2m". A bare number is
// rejected: it would be read as nanoseconds.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v <= 0 {
		return fmt.Errorf("%w: %q is not a positive duration such as \"30s\" or \"2m\"", ErrInvalid, b)
	}
	d.Duration = v
	return nil
}

// File is a configuration file.
type File struct {
	Path    string // where it is (or would be, when Missing)
	Missing bool   // no file at the default location: every setting is unset

	DefaultAccount string              `toml:"default_account"`
	Accounts       map[string]*Account `toml:"accounts"`
}

// DefaultPath is $XDG_CONFIG_HOME/xfer/config.toml, or
// ~/.config/xfer/config.toml when XDG_CONFIG_HOME is unset or not absolute
// (as the XDG Base Directory specification says).
func DefaultPath() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "xfer", "config.toml"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("config: cannot find the configuration file: %w", err)
	}
	return filepath.Join(home, ".config", "xfer", "config.toml"), nil
}

// Find loads the file given with --config (path not empty), which must
// exist, or else the file at DefaultPath, which need not: then the File is
// empty and Missing.
func Find(path string) (*File, error) {
	if path != "" {
		return Load(path)
	}
	path, err := DefaultPath()
	if err != nil {
		return nil, err
	}
	f, err := Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{Path: path, Missing: true}, nil
	}
	return f, err
}

// Load reads and checks the configuration file at path.
func Load(path string) (*File, error) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs // so that relative paths in the file do not depend on the working directory
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat() // the mode of the file read, not of one put there since
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	b, err := io.ReadAll(fh)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	f, err := Parse(path, b)
	if err != nil {
		return nil, err
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		for _, name := range f.names() {
			if f.Accounts[name].Has("password") {
				return nil, fmt.Errorf("config: %s %w (mode %#o, [accounts.%s] sets password): chmod 600 %s",
					path, ErrPermissions, perm, name, path)
			}
		}
	}
	return f, nil
}

// Parse decodes the TOML text b of the file at path (used for messages and
// relative paths) and checks it; it does not look at the file itself.
func Parse(path string, b []byte) (*File, error) {
	var raw map[string]any
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("config: %s:%d: %s", path, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	// Check every key, in the order of the file, before decoding: the
	// first unknown key or wrong type is reported by name.
	for _, k := range md.Keys() {
		if err := check(k, lookup(raw, k)); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	f := &File{Path: path}
	if _, err := toml.NewDecoder(bytes.NewReader(b)).Decode(f); err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err) // check lets nothing through that fails here
	}
	home, _ := os.UserHomeDir()
	base := filepath.Dir(path)
	for name, a := range f.Accounts {
		a.Name = name
		a.set = map[string]bool{}
		for _, k := range Keys {
			a.set[k] = md.IsDefined("accounts", name, k)
		}
		for _, p := range []*string{&a.TLSCA, &a.PasswordFile, &a.Dir} {
			*p = resolvePath(*p, home, base)
		}
	}
	if f.DefaultAccount != "" {
		if _, ok := f.Accounts[f.DefaultAccount]; !ok {
			return nil, fmt.Errorf("config: %s: default_account %q: %w [accounts.%s]%s",
				path, f.DefaultAccount, ErrNoAccount, f.DefaultAccount, f.have())
		}
	}
	return f, nil
}

// The types of the values, for check.
type kind int

const (
	kString kind = iota
	kBool
	kDuration
	kList
)

var kinds = map[string]kind{
	"jid": kString, "server": kString, "tls_ca": kString, "insecure": kBool, "no_tls": kBool,
	"timeout": kDuration, "password": kString, "password_file": kString, "password_cmd": kString,
	"proxies": kList, "dir": kString, "from": kList,
}

// check checks one key of the file and its value.
func check(k toml.Key, v any) error {
	name := k.String()
	switch {
	case len(k) == 1 && k[0] == "default_account":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: %w: want an account name in quotes, not %s", name, ErrInvalid, describe(v))
		}
	case len(k) == 1 && k[0] == "accounts", len(k) == 2 && k[0] == "accounts":
		if _, ok := v.(map[string]any); !ok {
			want := "sections [accounts.NAME]"
			if len(k) == 2 {
				want = "a section [" + name + "]"
			}
			return fmt.Errorf("%s: %w: want %s, not %s", name, ErrInvalid, want, describe(v))
		}
	case len(k) == 3 && k[0] == "accounts":
		kd, known := kinds[k[2]]
		if !known {
			return unknownKey(k)
		}
		return checkKind(name, kd, v)
	default:
		return unknownKey(k)
	}
	return nil
}

func checkKind(name string, kd kind, v any) error {
	ok := false
	want := ""
	switch kd {
	case kString:
		_, ok = v.(string)
		want = "a string in quotes"
	case kBool:
		_, ok = v.(bool)
		want = "true or false"
	case kDuration:
		want = `a duration in quotes such as "30s" or "2m"`
		if s, isString := v.(string); isString {
			d, err := time.ParseDuration(s)
			ok = err == nil && d > 0
		}
	case kList:
		want = `a list of strings such as ["a", "b"]`
		if l, isList := v.([]any); isList {
			ok = true
			for _, e := range l {
				if _, isString := e.(string); !isString {
					ok = false
				}
			}
		}
	}
	if !ok {
		return fmt.Errorf("%s: %w: want %s, not %s", name, ErrInvalid, want, describe(v))
	}
	return nil
}

// describe names a TOML value for a message.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case int64, float64:
		return fmt.Sprintf("the number %v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a section"
	case []map[string]any:
		return "a list of sections"
	}
	return fmt.Sprintf("a %T", v) // dates and times
}

// lookup finds the value of key k in the decoded document.
func lookup(m map[string]any, k toml.Key) any {
	var v any = m
	for _, part := range k {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[part]
	}
	return v
}

// Account returns the account called name, or when name is empty the
// default_account; nil (and no error) when neither is given.
func (f *File) Account(name string) (*Account, error) {
	if name == "" {
		name = f.DefaultAccount
	}
	if name == "" {
		return nil, nil
	}
	if a, ok := f.Accounts[name]; ok {
		return a, nil
	}
	if f.Missing {
		return nil, fmt.Errorf("config: account %q: %w: there is no configuration file %s", name, ErrNoAccount, f.Path)
	}
	return nil, fmt.Errorf("config: account %q: %w in %s%s", name, ErrNoAccount, f.Path, f.have())
}

// Names lists the accounts, sorted.
func (f *File) Names() []string { return f.names() }

func (f *File) names() []string {
	names := make([]string, 0, len(f.Accounts))
	for n := range f.Accounts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (f *File) have() string {
	if len(f.Accounts) == 0 {
		return " (it has no [accounts.NAME] section)"
	}
	return " (it has " + strings.Join(f.names(), ", ") + ")"
}

func resolvePath(p, home, base string) string {
	switch {
	case p == "":
		return ""
	case p == "~" && home != "":
		return home
	case strings.HasPrefix(p, "~/") && home != "":
		return filepath.Join(home, p[2:])
	case filepath.IsAbs(p):
		return p
	}
	return filepath.Join(base, p)
}

// unknownKey names the key, with a suggestion when it looks like a typo.
func unknownKey(k toml.Key) error {
	var known []string
	switch {
	case len(k) == 1:
		known = []string{"default_account", "accounts"}
	case len(k) == 3 && k[0] == "accounts":
		known = Keys
	}
	msg := fmt.Sprintf("%v %q", ErrUnknownKey, k.String())
	last := k[len(k)-1]
	if s := closest(last, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else if len(k) == 1 && slices.Contains(Keys, k[0]) || len(k) == 2 && k[0] == "accounts" {
		msg += " (account settings go in a section [accounts.NAME])"
	}
	return wrapped{msg, ErrUnknownKey}
}

type wrapped struct {
	msg string
	err error
}

func (w wrapped) Error() string { return w.msg }
func (w wrapped) Unwrap() error { return w.err }

// closest returns the known key that s is most likely a typo of: one edit
// away (two for longer keys), a swap of neighbours counting as one edit.
func closest(s string, known []string) string {
	s = strings.ToLower(strings.ReplaceAll(s, "-", "_"))
	best, bestD := "", 3
	for _, k := range known {
		limit := 1
		if len(k) >= 6 {
			limit = 2
		}
		if d := distance(s, k); d <= limit && d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of adjacent bytes.
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
