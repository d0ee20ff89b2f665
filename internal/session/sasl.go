package session

// SASL (RFC 6120 §6): which mechanism to use, and the checks xfer makes on
// what a server sends before mellium.im/sasl computes anything from it.
// The SCRAM crypto (RFC 5802, RFC 7677, channel binding per RFC 5929 and
// RFC 9266) is mellium.im/sasl's; this file only chooses and guards.

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"mellium.im/sasl"

	"xfer/internal/fault"
)

// SASL mechanism names, strongest first: the order xfer prefers them.
const (
	MechSCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	MechSCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	MechSCRAMSHA256     = "SCRAM-SHA-256"
	MechSCRAMSHA1       = "SCRAM-SHA-1"
	MechPlain           = "PLAIN"
)

// Channel binding types (RFC 5929, RFC 9266), as XEP-0440 names them.
const (
	CBTLSExporter = "tls-exporter"
	CBTLSUnique   = "tls-unique"
)

// Errors of the login, each also wrapped with ErrAuth (exit 4).
var (
	// ErrDowngrade: the account has logged in with SCRAM before, and the
	// server now offers only PLAIN (Config.RefusePlain).
	ErrDowngrade = fault.New(fault.Auth, "session: the server offers only PLAIN, but this account has logged in with SCRAM before (a downgrade?)")
	// ErrServerProof: the server did not prove that it knows the password
	// (a bad or missing SCRAM server signature), or broke the SCRAM rules.
	ErrServerProof = fault.New(fault.Auth, "session: the server failed SCRAM")
	// ErrNoMechanism: no mechanism offered that xfer can use.
	ErrNoMechanism = fault.New(fault.Auth, "session: no usable SASL mechanism")
)

// preference lists the mechanisms in the order they are tried.
var preference = []string{MechSCRAMSHA256Plus, MechSCRAMSHA1Plus, MechSCRAMSHA256, MechSCRAMSHA1, MechPlain}

var mechanisms = map[string]sasl.Mechanism{
	MechSCRAMSHA256Plus: sasl.ScramSha256Plus,
	MechSCRAMSHA1Plus:   sasl.ScramSha1Plus,
	MechSCRAMSHA256:     sasl.ScramSha256,
	MechSCRAMSHA1:       sasl.ScramSha1,
	MechPlain:           sasl.Plain,
}

// IsSCRAM reports whether mech is one of the SCRAM mechanisms.
func IsSCRAM(mech string) bool { return strings.HasPrefix(mech, "SCRAM-") }

// channelBinding returns the binding type mellium.im/sasl uses on this TLS
// connection, or "" when none can be used: tls-exporter on TLS 1.3,
// tls-unique below it. offered is the server's XEP-0440 list; a server that
// sends none (Prosody 0.12, ejabberd 23.01) is taken to mean tls-unique,
// which is what such servers implement, and which TLS 1.3 does not define.
func channelBinding(state *tls.ConnectionState, offered []string) string {
	if state == nil {
		return ""
	}
	want := CBTLSUnique
	if state.Version >= tls.VersionTLS13 {
		want = CBTLSExporter
	} else if len(state.TLSUnique) == 0 {
		return ""
	}
	if len(offered) == 0 {
		if want == CBTLSUnique {
			return want
		}
		return ""
	}
	for _, o := range offered {
		if o == want {
			return want
		}
	}
	return ""
}

// chooseMechanism picks the strongest offered mechanism xfer can use, and
// the channel binding type for a -PLUS one. refusePlain leaves PLAIN out.
func chooseMechanism(offered, cbOffered []string, state *tls.ConnectionState, refusePlain bool) (mech, cb string, err error) {
	has := make(map[string]bool, len(offered))
	for _, m := range offered {
		has[strings.ToUpper(strings.TrimSpace(m))] = true
	}
	cb = channelBinding(state, cbOffered)
	for _, m := range preference {
		if !has[m] {
			continue
		}
		if strings.HasSuffix(m, "-PLUS") && cb == "" {
			continue
		}
		if m == MechPlain && refusePlain {
			return "", "", authFailure(ErrDowngrade, ErrDowngrade)
		}
		if !strings.HasSuffix(m, "-PLUS") {
			cb = ""
		}
		return m, cb, nil
	}
	return "", "", authFailure(ErrNoMechanism, fmt.Errorf("%w: the server offers %s; xfer speaks %s",
		ErrNoMechanism, listOrNone(offered), strings.Join(preference, ", ")))
}

// authError is an ErrAuth failure of a more specific kind (ErrDowngrade,
// ErrServerProof, ErrNoMechanism): errors.Is matches both, and the
// message names the package once.
type authError struct {
	kind error
	mech string // the mechanism it happened in, or ""
	err  error
}

func authFailure(kind, err error) error { return &authError{kind: kind, err: err} }

func (e *authError) Error() string {
	msg := ErrAuth.Error() + ": "
	if e.mech != "" {
		msg += e.mech + ": "
	}
	return msg + strings.TrimPrefix(e.err.Error(), "session: ")
}

func (e *authError) Is(target error) bool { return target == ErrAuth || target == e.kind }

func (e *authError) Unwrap() error { return e.err }

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// Iteration counts xfer accepts in a SCRAM server-first-message. RFC 7677
// §4 asks for at least 4096 (Prosody refuses fewer itself); the ceiling
// bounds the PBKDF2 work a hostile server can make the client do (about a
// second at 4 million on one core).
const (
	MinSCRAMIterations = 4096
	MaxSCRAMIterations = 4_000_000
)

// scramFirst is a parsed SCRAM server-first-message (RFC 5802 §5.1).
type scramFirst struct {
	Nonce      string
	Salt       []byte
	Iterations int
}

// parseServerFirst parses and checks a server-first-message:
// "r=nonce,s=salt,i=count[,ext…]". clientNonce is the nonce xfer sent; the
// server's must extend it.
func parseServerFirst(msg []byte, clientNonce []byte) (scramFirst, error) {
	var f scramFirst
	if len(msg) == 0 {
		return f, fmt.Errorf("%w: empty server-first-message", ErrServerProof)
	}
	fields := bytes.Split(msg, []byte(","))
	if len(fields) < 3 {
		return f, fmt.Errorf("%w: server-first-message has %d fields, want r, s, i", ErrServerProof, len(fields))
	}
	for i, want := range []byte{'r', 's', 'i'} {
		if len(fields[i]) < 2 || fields[i][0] != want || fields[i][1] != '=' {
			if len(fields[i]) > 0 && fields[i][0] == 'm' {
				return f, fmt.Errorf("%w: the server sent the reserved attribute m", ErrServerProof)
			}
			return f, fmt.Errorf("%w: server-first-message field %d is not %c=…", ErrServerProof, i+1, want)
		}
	}
	nonce := fields[0][2:]
	if len(nonce) <= len(clientNonce) || !bytes.HasPrefix(nonce, clientNonce) {
		return f, fmt.Errorf("%w: the server's nonce does not extend the client's", ErrServerProof)
	}
	for _, c := range nonce {
		if c < 0x21 || c > 0x7e || c == ',' {
			return f, fmt.Errorf("%w: the server's nonce has a character outside printable ASCII", ErrServerProof)
		}
	}
	salt, err := base64.StdEncoding.Strict().DecodeString(string(fields[1][2:]))
	if err != nil || len(salt) == 0 {
		return f, fmt.Errorf("%w: the salt is not base64 or is empty", ErrServerProof)
	}
	it := string(fields[2][2:])
	n, err := strconv.Atoi(it)
	if err != nil || strings.HasPrefix(it, "+") || strings.HasPrefix(it, "-") || (len(it) > 1 && it[0] == '0') {
		return f, fmt.Errorf("%w: iteration count %.20q is not a number", ErrServerProof, it)
	}
	if n < MinSCRAMIterations || n > MaxSCRAMIterations {
		return f, fmt.Errorf("%w: iteration count %d is outside %d…%d", ErrServerProof, n, MinSCRAMIterations, MaxSCRAMIterations)
	}
	for _, ext := range fields[3:] {
		if len(ext) > 0 && ext[0] == 'm' {
			return f, fmt.Errorf("%w: the server sent the reserved attribute m", ErrServerProof)
		}
	}
	return scramFirst{Nonce: string(nonce), Salt: salt, Iterations: n}, nil
}

// marshal renders the message again (for round-trip tests).
func (f scramFirst) marshal() []byte {
	return []byte("r=" + f.Nonce + ",s=" + base64.StdEncoding.EncodeToString(f.Salt) + ",i=" + strconv.Itoa(f.Iterations))
}

// parseServerFinal parses a server-final-message (RFC 5802 §7):
// "v=signature" or "e=error". It returns the decoded signature, or an
// error naming the server's e= value.
func parseServerFinal(msg []byte) ([]byte, error) {
	field, _, _ := bytes.Cut(msg, []byte(","))
	switch {
	case bytes.HasPrefix(field, []byte("e=")):
		return nil, fmt.Errorf("%w: the server ended SCRAM with %.40q", ErrServerProof, field[2:])
	case bytes.HasPrefix(field, []byte("v=")):
		sig, err := base64.StdEncoding.Strict().DecodeString(string(field[2:]))
		if err != nil || len(sig) == 0 {
			return nil, fmt.Errorf("%w: the server signature is not base64", ErrServerProof)
		}
		return sig, nil
	}
	return nil, fmt.Errorf("%w: the server-final-message is neither v= nor e=", ErrServerProof)
}
