package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newConfigCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the configuration",
		Long: `The configuration file is $XDG_CONFIG_HOME/xfer/config.toml, or
~/.config/xfer/config.toml, or the FILE of --config. It holds named accounts;
--account NAME (or XFER_ACCOUNT) chooses one, else default_account does.
The keys are the flags' names with underscores:

  default_account = "alice"

  [accounts.alice]
  jid = "alice@example.org/laptop"
  server = "xmpp.example.org:5222"
  tls_ca = "/path/to/ca.pem"
  password_cmd = "pass show xmpp/alice"
  # insecure = false, no_tls = false, timeout = "30s",
  # password = "…" (refused unless the file is chmod 600), password_file = "~/.xmpp-pw",
  # proxies = ["proxy.example.org"] (send, probe-proxy),
  # dir = "~/Downloads", from = ["bob@example.org"] (receive)

Flags win over environment variables (XFER_JID, XFER_SERVER,
XFER_PASSWORD), which win over the file, which wins over the defaults.
An unknown key is an error.`,
	}
	cmd.AddCommand(newConfigShowCmd(g))
	return cmd
}

func newConfigShowCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Print the effective settings and where each comes from",
		Long: `show prints the settings that apply to the selected account, each with where
it came from: a flag, an environment variable, the configuration file, or
the default. A password is shown as "********"; a password_cmd is shown (it
is a command, not a secret) but not run. The last line says where the
password will be read from.`,
		Example: `  xfer config show
  xfer --account work config show --json
  xfer --config ./test.toml --server 127.0.0.1:5222 config show`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			st, err := g.settings()
			if err != nil {
				return err
			}
			if g.json {
				return g.emitJSON(st.document())
			}
			st.print(g)
			return nil
		},
	}
}

// shown is one setting as config show prints it.
type shown struct {
	Key    string `json:"-"`
	Value  any    `json:"value"`
	Source source `json:"source"`
	Name   string `json:"name,omitempty"` // the flag, variable or key it came from
	note   string
}

func show[T any](key string, v value[T], display any, note string) shown {
	return shown{Key: key, Value: display, Source: v.Source, Name: v.Name, note: note}
}

// shown lists the settings in the order of the documentation, secrets
// masked.
func (st *settings) shown() []shown {
	mask := ""
	if st.Password.Value != "" {
		mask = "********"
	}
	list := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	noAccount := "no account section used"
	if st.unused != "" {
		noAccount = st.unused
	}
	return []shown{
		show("account", st.Account, st.Account.Value, noAccount),
		show("jid", st.JID, st.JID.Value, ""),
		show("server", st.Server, st.Server.Value, "the JID domain's SRV record, then the domain on port 5222"),
		show("tls_ca", st.TLSCA, st.TLSCA.Value, "the system's CAs only"),
		show("insecure", st.Insecure, st.Insecure.Value, ""),
		show("no_tls", st.NoTLS, st.NoTLS.Value, ""),
		show("timeout", st.Timeout, st.Timeout.Value.String(), ""),
		show("password", st.Password, mask, ""),
		show("password_file", st.PasswordFile, st.PasswordFile.Value, ""),
		show("password_cmd", st.PasswordCmd, st.PasswordCmd.Value, ""),
		show("proxies", st.Proxies, list(st.Proxies.Value), "discovered on the server"),
		show("dir", st.Dir, st.Dir.Value, "receive needs --dir"),
		show("from", st.From, list(st.From.Value), "only --from and the account's own resources"),
	}
}

// document is the JSON form: one object with "type":"config".
func (st *settings) document() any {
	m := map[string]shown{}
	for _, s := range st.shown() {
		m[s.Key] = s
	}
	file := ""
	if st.file != nil {
		file = st.file.Path
	}
	return struct {
		Type         string           `json:"type"`
		File         string           `json:"file"`
		FileFound    bool             `json:"file_found"`
		Settings     map[string]shown `json:"settings"`
		PasswordFrom string           `json:"password_from"`
	}{"config", file, st.file != nil && !st.file.Missing, m, st.passwordSource().describe()}
}

// print writes the settings as TOML, each with a comment saying where it
// came from.
func (st *settings) print(g *globalOptions) {
	if st.file.Missing {
		fmt.Fprintf(g.stdout, "# configuration file: %s (not there)\n", st.file.Path)
	} else {
		fmt.Fprintf(g.stdout, "# configuration file: %s\n", st.file.Path)
	}
	w := tabwriter.NewWriter(g.stdout, 0, 4, 1, ' ', 0)
	for _, s := range st.shown() {
		origin := value[any]{Source: s.Source, Name: s.Name}.origin()
		if s.Source == fromDefault && s.note != "" {
			origin += ": " + s.note
		}
		fmt.Fprintf(w, "%s\t= %s\t# %s\n", s.Key, tomlValue(s.Value), origin)
	}
	w.Flush()
	fmt.Fprintf(g.stdout, "# password from: %s\n", st.passwordSource().describe())
}

// tomlValue formats a string, bool or list of strings as TOML.
func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	return fmt.Sprint(v)
}
