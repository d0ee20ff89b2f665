package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xfer/internal/config"
)

// isolate gives the test an empty home, no XDG_CONFIG_HOME and none of the
// XFER_ variables, so that the developer's own configuration is not read.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	for _, v := range []string{"XFER_JID", "XFER_SERVER", "XFER_PASSWORD", "XFER_ACCOUNT"} {
		t.Setenv(v, "")
	}
	return home
}

func writeConfig(t *testing.T, home, text string) string {
	t.Helper()
	p := filepath.Join(home, ".config", "xfer", "config.toml")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const twoAccounts = `default_account = "alice"
[accounts.alice]
jid = "alice@example.org/laptop"
server = "xmpp.example.org:5222"
tls_ca = "/path/to/ca.pem"
password_cmd = "pass show xmpp/alice"
timeout = "10s"
insecure = true
proxies = ["proxy.example.org"]
dir = "~/Downloads"
from = ["bob@example.org"]

[accounts.work]
jid = "me@work.example"
password = "s3cret"
`

type shownJSON struct {
	Value  any    `json:"value"`
	Source string `json:"source"`
	Name   string `json:"name"`
}

// configShow runs "xfer ARGS config show --json" and returns the settings.
func configShow(t *testing.T, args ...string) (map[string]shownJSON, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(append(args, "config", "show", "--json"), strings.NewReader(""), &stdout, &stderr)
	if code != ExitOK {
		return nil, stderr.String(), errors.New(stderr.String())
	}
	var doc struct {
		Type         string               `json:"type"`
		Settings     map[string]shownJSON `json:"settings"`
		PasswordFrom string               `json:"password_from"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if doc.Type != "config" {
		t.Errorf("type %q", doc.Type)
	}
	if strings.Contains(stdout.String(), "s3cret") {
		t.Errorf("config show printed the password: %s", stdout.String())
	}
	return doc.Settings, doc.PasswordFrom, nil
}

func TestSettingsPrecedence(t *testing.T) {
	type want struct{ value, source string }
	for _, tc := range []struct {
		name   string
		config string
		env    map[string]string
		args   []string
		want   map[string]want
	}{
		{
			name: "defaults, no file",
			want: map[string]want{
				"account": {"", "default"}, "jid": {"", "default"}, "server": {"", "default"},
				"timeout": {"30s", "default"}, "insecure": {"false", "default"}, "password": {"", "default"},
			},
		},
		{
			name:   "the file's default account",
			config: twoAccounts,
			want: map[string]want{
				"account": {"alice", "config"}, "jid": {"alice@example.org/laptop", "config"},
				"server": {"xmpp.example.org:5222", "config"}, "tls_ca": {"/path/to/ca.pem", "config"},
				"timeout": {"10s", "config"}, "insecure": {"true", "config"}, "no_tls": {"false", "default"},
				"password_cmd": {"pass show xmpp/alice", "config"}, "password": {"", "default"},
				"proxies": {"[proxy.example.org]", "config"}, "from": {"[bob@example.org]", "config"},
			},
		},
		{
			name:   "env beats the file",
			config: twoAccounts,
			env:    map[string]string{"XFER_JID": "Alice@example.org/phone", "XFER_SERVER": "env.example.org:5222", "XFER_PASSWORD": "s3cret"},
			want: map[string]want{
				"account": {"alice", "config"}, "jid": {"Alice@example.org/phone", "env"}, "server": {"env.example.org:5222", "env"},
				"password": {"********", "env"}, "tls_ca": {"/path/to/ca.pem", "config"},
			},
		},
		{
			name:   "XFER_JID naming another account: the default_account is not used",
			config: twoAccounts,
			env:    map[string]string{"XFER_JID": "bob@example.org"},
			want: map[string]want{
				"account": {"", "default"}, "jid": {"bob@example.org", "env"}, "server": {"", "default"},
				"tls_ca": {"", "default"}, "password_cmd": {"", "default"}, "proxies": {"[]", "default"},
			},
		},
		{
			name:   "flags beat env and the file",
			config: twoAccounts,
			env:    map[string]string{"XFER_JID": "env@example.org", "XFER_SERVER": "env.example.org:5222"},
			args:   []string{"--jid", "flag@example.org", "--server", "flag.example.org:1", "--timeout", "3s", "--insecure=false", "--tls-ca", "/flag/ca.pem"},
			want: map[string]want{
				"jid": {"flag@example.org", "flag"}, "server": {"flag.example.org:1", "flag"},
				"timeout": {"3s", "flag"}, "insecure": {"false", "flag"}, "tls_ca": {"/flag/ca.pem", "flag"},
			},
		},
		{
			name:   "empty env is unset",
			config: twoAccounts,
			env:    map[string]string{"XFER_SERVER": ""},
			want:   map[string]want{"server": {"xmpp.example.org:5222", "config"}},
		},
		{
			name:   "XFER_ACCOUNT picks an account",
			config: twoAccounts,
			env:    map[string]string{"XFER_ACCOUNT": "work"},
			want: map[string]want{
				"account": {"work", "env"}, "jid": {"me@work.example", "config"}, "password": {"********", "config"},
				"server": {"", "default"}, "timeout": {"30s", "default"}, "proxies": {"[]", "default"},
			},
		},
		{
			name:   "--account beats XFER_ACCOUNT",
			config: twoAccounts,
			env:    map[string]string{"XFER_ACCOUNT": "work"},
			args:   []string{"--account", "alice"},
			want:   map[string]want{"account": {"alice", "flag"}, "jid": {"alice@example.org/laptop", "config"}},
		},
		{
			name:   "no default_account: no section is used",
			config: "[accounts.alice]\njid = \"alice@example.org\"\n",
			want:   map[string]want{"account": {"", "default"}, "jid": {"", "default"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := isolate(t)
			if tc.config != "" {
				writeConfig(t, home, tc.config)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, _, err := configShow(t, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			for k, w := range tc.want {
				g, ok := got[k]
				if !ok {
					t.Errorf("%s: not shown", k)
					continue
				}
				value := ""
				switch v := g.Value.(type) {
				case string:
					value = v
				case []any:
					s := make([]string, len(v))
					for i, e := range v {
						s[i] = e.(string)
					}
					value = "[" + strings.Join(s, " ") + "]"
				default:
					b, _ := json.Marshal(v)
					value = string(b)
				}
				if value != w.value || g.Source != w.source {
					t.Errorf("%s = %q from %s, want %q from %s", k, value, g.Source, w.value, w.source)
				}
			}
		})
	}
}

func TestSettingsErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		mode   os.FileMode
		args   []string
		env    map[string]string
		want   string
	}{
		{"unknown key", "[accounts.a]\njdi = \"a@b\"\n", 0o600, nil, nil, `unknown key "accounts.a.jdi"`},
		{"readable password", "[accounts.a]\npassword = \"s3cret\"\n", 0o644, nil, nil, "chmod 600 "},
		{"missing --config", "", 0, []string{"--config", "/nonexistent/xfer.toml"}, nil, "/nonexistent/xfer.toml"},
		{"unknown --account", twoAccounts, 0o600, []string{"--account", "nobody"}, nil, `account "nobody": no such account`},
		{"unknown XFER_ACCOUNT", twoAccounts, 0o600, nil, map[string]string{"XFER_ACCOUNT": "nobody"}, "env XFER_ACCOUNT"},
		{"--account without a file", "", 0, []string{"--account", "alice"}, nil, "there is no configuration file"},
		{"--account with the --jid of another", twoAccounts, 0o600, []string{"--account", "alice", "--jid", "bob@example.org"}, nil,
			`--jid "bob@example.org" is not the account "alice" (alice@example.org/laptop)`},
		{"two password flags", "", 0, []string{"--password-file", "f", "--password-cmd", "c"}, nil, "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := isolate(t)
			if tc.config != "" {
				p := writeConfig(t, home, tc.config)
				if err := os.Chmod(p, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := Main(append(tc.args, "config", "show"), strings.NewReader(""), &stdout, &stderr)
			if code != ExitUsage {
				t.Errorf("exit code %d, want %d (usage)", code, ExitUsage)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tc.want)
			}
			if strings.Contains(stderr.String()+stdout.String(), "s3cret") {
				t.Error("the password was printed")
			}
		})
	}
}

func TestPasswordSources(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		env    map[string]string
		args   []string // files are written in the home directory
		want   string
		err    string
	}{
		{name: "no source, no terminal", err: "no password"},
		{name: "XFER_PASSWORD", env: map[string]string{"XFER_PASSWORD": "from-env"}, want: "from-env"},
		{name: "--password-file beats XFER_PASSWORD", env: map[string]string{"XFER_PASSWORD": "from-env"},
			args: []string{"--password-file", "pw"}, want: "from-file"},
		{name: "--password-cmd beats XFER_PASSWORD", env: map[string]string{"XFER_PASSWORD": "from-env"},
			args: []string{"--password-cmd", `printf 'from-cmd\n'`}, want: "from-cmd"},
		{name: "XFER_PASSWORD beats the file", env: map[string]string{"XFER_PASSWORD": "from-env"},
			config: "default_account = \"a\"\n[accounts.a]\npassword_cmd = \"printf config-cmd\"\n", want: "from-env"},
		{name: "--password-cmd beats the file's password",
			config: "default_account = \"a\"\n[accounts.a]\npassword = \"config-pw\"\n",
			args:   []string{"--password-cmd", "printf flag-cmd"}, want: "flag-cmd"},
		{name: "config password_cmd", config: "default_account = \"a\"\n[accounts.a]\npassword_cmd = \"printf '%s\\\\n' config-cmd\"\n", want: "config-cmd"},
		{name: "config password_cmd sees the environment", env: map[string]string{"MY_PW": "via-env"},
			config: "default_account = \"a\"\n[accounts.a]\npassword_cmd = 'printf \"%s\\n\" \"$MY_PW\"'\n", want: "via-env"},
		{name: "config password_file before password_cmd and password",
			config: "default_account = \"a\"\n[accounts.a]\npassword = \"config-pw\"\npassword_cmd = \"printf config-cmd\"\npassword_file = \"~/pw\"\n", want: "from-file"},
		{name: "config password_cmd before password",
			config: "default_account = \"a\"\n[accounts.a]\npassword = \"config-pw\"\npassword_cmd = \"printf config-cmd\"\n", want: "config-cmd"},
		{name: "config password", config: "default_account = \"a\"\n[accounts.a]\npassword = \"config-pw\"\n", want: "config-pw"},
		{name: "password_cmd fails", config: "default_account = \"a\"\n[accounts.a]\npassword_cmd = \"exit 1\"\n", err: `password command "exit 1" failed: exit status 1`},
		{name: "password_cmd prints nothing", args: []string{"--password-cmd", "true"}, err: "printed nothing"},
		{name: "empty password file", args: []string{"--password-file", "empty"}, err: "is empty"},
		{name: "missing password file", args: []string{"--password-file", "nope"}, err: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := isolate(t)
			if err := os.WriteFile(filepath.Join(home, "pw"), []byte("from-file\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(home, "empty"), []byte("\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Chdir(home)
			if tc.config != "" {
				writeConfig(t, home, tc.config)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			g := &globalOptions{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &stderr}
			root := newRootCmd(g)
			if err := root.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			st, err := g.settings()
			if err != nil {
				t.Fatal(err)
			}
			pw, err := g.password(context.Background(), st)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("= %q, %v; want an error containing %q", pw, err, tc.err)
				}
				if exitCodeFor(err) != ExitUsage {
					t.Errorf("exit code %d, want usage", exitCodeFor(err))
				}
				if !errors.Is(err, config.ErrPassword) && tc.name != "no source, no terminal" {
					t.Errorf("error %v is not config.ErrPassword", err)
				}
				return
			}
			if err != nil || pw != tc.want {
				t.Fatalf("= %q, %v; want %q", pw, err, tc.want)
			}
		})
	}
}
