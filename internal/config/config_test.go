package config

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The example of the README and of "xfer config --help" must work as written.
const example = `default_account = "alice"
[accounts.alice]
jid = "alice@example.org/laptop"
server = "xmpp.example.org:5222"
tls_ca = "/path/to/ca.pem"
password_cmd = "pass show xmpp/alice"
`

func TestParseExample(t *testing.T) {
	f, err := Parse("/etc/xfer/config.toml", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.Account("")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "alice" || a.JID != "alice@example.org/laptop" || a.Server != "xmpp.example.org:5222" ||
		a.TLSCA != "/path/to/ca.pem" || a.PasswordCmd != "pass show xmpp/alice" {
		t.Errorf("account = %+v", a)
	}
	for _, k := range Keys {
		want := slices.Contains([]string{"jid", "server", "tls_ca", "password_cmd"}, k)
		if a.Has(k) != want {
			t.Errorf("Has(%q) = %v, want %v", k, a.Has(k), want)
		}
	}
}

func TestParseEveryKey(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	f, err := Parse("/etc/xfer/config.toml", []byte(`
[accounts.work]
jid = "me@work.example"
insecure = true
no_tls = false
timeout = "1m30s"
password = "s3cret"
password_file = "~/pw"
proxies = ["proxy.work.example", "proxy2.work.example"]
dir = "inbox"
from = ["boss@work.example"]
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.Account("work")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Insecure || a.NoTLS || !a.Has("no_tls") || a.Timeout.Duration != 90*time.Second || a.Password != "s3cret" {
		t.Errorf("account = %+v", a)
	}
	if want := filepath.Join(home, "pw"); a.PasswordFile != want {
		t.Errorf("password_file = %q, want %q (~ expanded)", a.PasswordFile, want)
	}
	if a.Dir != "/etc/xfer/inbox" {
		t.Errorf("dir = %q, want it relative to the file's directory", a.Dir)
	}
	if !slices.Equal(a.Proxies, []string{"proxy.work.example", "proxy2.work.example"}) || !slices.Equal(a.From, []string{"boss@work.example"}) {
		t.Errorf("proxies = %q, from = %q", a.Proxies, a.From)
	}
	if a, err := f.Account(""); a != nil || err != nil {
		t.Errorf("no name and no default_account: got %v, %v; want nil, nil", a, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		is         error
		want       []string // substrings of the message
	}{
		{"typo in an account", "[accounts.a]\njdi = \"a@b\"\n", ErrUnknownKey, []string{`"accounts.a.jdi"`, `did you mean "jid"`}},
		{"swapped letters", "[accounts.a]\npasword_cmd = \"x\"\n", ErrUnknownKey, []string{`did you mean "password_cmd"`}},
		{"dash instead of underscore", "[accounts.a]\ntls-ca = \"x\"\n", ErrUnknownKey, []string{`"accounts.a.tls-ca"`, `"tls_ca"`}},
		{"account key at the top", "jid = \"a@b\"\n", ErrUnknownKey, []string{`"jid"`, "[accounts.NAME]"}},
		{"unknown top-level key", "colour = true\n", ErrUnknownKey, []string{`"colour"`}},
		{"unknown sub-table", "[accounts.a.extra]\nx = 1\n", ErrUnknownKey, []string{`"accounts.a.extra"`}},
		{"timeout as a number", "[accounts.a]\ntimeout = 30\n", ErrInvalid, []string{"accounts.a.timeout", `"30s"`, "the number 30"}},
		{"bad duration", "[accounts.a]\ntimeout = \"soon\"\n", ErrInvalid, []string{"accounts.a.timeout"}},
		{"negative duration", "[accounts.a]\ntimeout = \"-1s\"\n", ErrInvalid, []string{"accounts.a.timeout"}},
		{"bool as a string", "[accounts.a]\ninsecure = \"yes\"\n", ErrInvalid, []string{"accounts.a.insecure", "true or false"}},
		{"proxies as a string", "[accounts.a]\nproxies = \"p.example\"\n", ErrInvalid, []string{"accounts.a.proxies", "list of strings"}},
		{"from with a number", "[accounts.a]\nfrom = [\"a@b\", 1]\n", ErrInvalid, []string{"accounts.a.from"}},
		{"accounts not a table", "accounts = 3\n", ErrInvalid, []string{"accounts", "[accounts.NAME]"}},
		{"account not a table", "[accounts]\nalice = \"a@b\"\n", ErrInvalid, []string{"accounts.alice", "[accounts.alice]"}},
		{"default_account missing", "default_account = \"bob\"\n[accounts.alice]\n", ErrNoAccount, []string{`"bob"`, "alice"}},
		{"syntax", "[accounts.a]\njid = \n", nil, []string{"config.toml:2"}},
		{"duplicate key", "[accounts.a]\njid = \"a@b\"\njid = \"c@d\"\n", nil, []string{"config.toml:3", "already been defined"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("/x/config.toml", []byte(tc.text))
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			for _, w := range append(tc.want, "/x/config.toml") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestAccountSelection(t *testing.T) {
	f, err := Parse("/x/config.toml", []byte(example+"[accounts.work]\njid = \"me@work.example\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, want, err string }{
		{"", "alice", ""},
		{"work", "work", ""},
		{"nobody", "", `"nobody": no such account in /x/config.toml (it has alice, work)`},
	} {
		a, err := f.Account(tc.name)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrNoAccount) {
				t.Errorf("Account(%q): error %v, want one containing %q", tc.name, err, tc.err)
			}
		case err != nil || a.Name != tc.want:
			t.Errorf("Account(%q) = %v, %v; want %q", tc.name, a, err, tc.want)
		}
	}
}

func write(t *testing.T, path, text string, mode fs.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by the umask
		t.Fatal(err)
	}
	return path
}

func TestLoadPermissions(t *testing.T) {
	withPassword := "[accounts.a]\njid = \"a@b\"\npassword = \"s3cret\"\n"
	withCmd := "[accounts.a]\njid = \"a@b\"\npassword_cmd = \"pass show a\"\n"
	for _, tc := range []struct {
		name   string
		text   string
		mode   fs.FileMode
		refuse bool
	}{
		{"password, 0600", withPassword, 0o600, false},
		{"password, 0400", withPassword, 0o400, false},
		{"password, 0644", withPassword, 0o644, true},
		{"password, 0640", withPassword, 0o640, true},
		{"password, 0604", withPassword, 0o604, true},
		{"empty password, 0644", "[accounts.a]\npassword = \"\"\n", 0o644, true},
		{"password_cmd, 0644", withCmd, 0o644, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, filepath.Join(t.TempDir(), "config.toml"), tc.text, tc.mode)
			_, err := Load(p)
			if !tc.refuse {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrPermissions) {
				t.Fatalf("error %v, want ErrPermissions", err)
			}
			if !strings.Contains(err.Error(), "chmod 600 "+p) {
				t.Errorf("error %q does not say chmod 600 %s", err, p)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", filepath.Join(dir, "home"))

	// No XDG_CONFIG_HOME, no file: empty, not an error.
	t.Setenv("XDG_CONFIG_HOME", "")
	f, err := Find("")
	if err != nil || !f.Missing || f.Path != filepath.Join(dir, "home", ".config", "xfer", "config.toml") {
		t.Fatalf("Find() = %+v, %v", f, err)
	}
	// A relative XDG_CONFIG_HOME is ignored, as the specification says.
	t.Setenv("XDG_CONFIG_HOME", "relative")
	if f, _ := Find(""); f.Path != filepath.Join(dir, "home", ".config", "xfer", "config.toml") {
		t.Errorf("relative XDG_CONFIG_HOME: path %s", f.Path)
	}

	xdg := filepath.Join(dir, "xdg")
	t.Setenv("XDG_CONFIG_HOME", xdg)
	write(t, filepath.Join(xdg, "xfer", "config.toml"), example, 0o644)
	f, err = Find("")
	if err != nil || f.Missing || f.DefaultAccount != "alice" {
		t.Fatalf("Find() with XDG_CONFIG_HOME = %+v, %v", f, err)
	}

	// A file named with --config must exist.
	if _, err := Find(filepath.Join(dir, "nope.toml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Find(missing) error = %v, want ErrNotExist", err)
	}
	// A broken default file is an error, not ignored.
	write(t, filepath.Join(xdg, "xfer", "config.toml"), "jdi = 1\n", 0o644)
	if _, err := Find(""); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Find(broken) error = %v", err)
	}
}

func TestRunPasswordCmd(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, cmd string
		timeout   time.Duration
		want      string
		err       string // substring; empty for success
		stderr    string
	}{
		{"first line", `printf 'hunter2\nsecond line\n'`, time.Minute, "hunter2", "", ""},
		{"no newline", `printf 'hunter2'`, time.Minute, "hunter2", "", ""},
		{"CRLF", `printf 'hunter2\r\n'`, time.Minute, "hunter2", "", ""},
		{"spaces kept", `printf ' a b \n'`, time.Minute, " a b ", "", ""},
		{"shell syntax", `X=hun; printf '%s\n' "${X}ter2" | cat`, time.Minute, "hunter2", "", ""},
		{"stderr passed through", `echo "unlocking" >&2; printf 'pw\n'`, time.Minute, "pw", "", "unlocking\n"},
		{"stdin is empty", `cat; printf 'pw\n'`, time.Minute, "pw", "", ""},
		{"fails", `echo oops >&2; exit 3`, time.Minute, "", "exit status 3", "oops\n"},
		{"prints nothing", `true`, time.Minute, "", "printed nothing", ""},
		{"empty first line", `printf '\nsecret\n'`, time.Minute, "", "printed nothing", ""},
		{"not found", `no-such-command-xfer`, time.Minute, "", "exit status 127", ""},
		{"too slow", `sleep 10`, 200 * time.Millisecond, "", "did not finish within 200ms", ""},
		{"child keeps stdout", `(sleep 10 &) ; printf 'pw\n'`, time.Minute, "pw", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			start := time.Now()
			pw, err := RunPasswordCmd(ctx, tc.cmd, &stderr, tc.timeout)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v", took)
			}
			if tc.err == "" {
				if err != nil || pw != tc.want {
					t.Errorf("= %q, %v; want %q", pw, err, tc.want)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrPassword) {
					t.Errorf("error %v, want ErrPassword containing %q", err, tc.err)
				}
				if !strings.Contains(err.Error(), strconv.Quote(tc.cmd)) {
					t.Errorf("error %q does not name the command", err)
				}
			}
			if tc.stderr != "" && !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.stderr)
			}
		})
	}
}

func TestRunPasswordCmdCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err := RunPasswordCmd(ctx, "sleep 10", nil, time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled (Ctrl-C, not a password problem)", err)
	}
}

func TestReadPasswordFile(t *testing.T) {
	p := write(t, filepath.Join(t.TempDir(), "pw"), "hunter2\r\nrest\n", 0o640)
	pw, perm, err := ReadPasswordFile(p)
	if err != nil || pw != "hunter2" || perm != 0o640 {
		t.Errorf("= %q, %v, %v", pw, perm, err)
	}
	if _, _, err := ReadPasswordFile(p + ".missing"); !errors.Is(err, ErrPassword) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"jid", "jid", 0}, {"jdi", "jid", 1}, {"timout", "timeout", 1}, {"", "abc", 3}, {"foo", "from", 2}} {
		if d := distance(tc.a, tc.b); d != tc.d {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}
