package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"xfer/internal/config"
	"xfer/internal/session"
)

// Downgrade protection, as Conversations and Monal have it: once an
// account has logged in with SCRAM, xfer will not send its password with
// PLAIN (an attacker who can strip SCRAM from the offer, or a server that
// lost its SCRAM keys, would otherwise get it) unless --allow-plain says
// so. The accounts are remembered, one bare JID a line, in
// scram-accounts next to the default configuration file.

const scramFileName = "scram-accounts"

func scramFile() (string, error) {
	p, err := config.DefaultPath()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(p), scramFileName), nil
}

// usedSCRAM reports whether the account has logged in with SCRAM before.
func usedSCRAM(jid string) bool {
	p, err := scramFile()
	if err != nil {
		return false
	}
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	bare := strings.ToLower(session.Bare(jid))
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == bare {
			return true
		}
	}
	return false
}

// rememberSCRAM records that the account has logged in with SCRAM.
func rememberSCRAM(jid string) error {
	if usedSCRAM(jid) {
		return nil
	}
	p, err := scramFile()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, strings.ToLower(session.Bare(jid))); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// downgradeHint adds what to do to a refused downgrade.
func downgradeHint(err error) error {
	if errors.Is(err, session.ErrDowngrade) {
		p, _ := scramFile()
		return fmt.Errorf("%w; if the server really no longer offers SCRAM, give --allow-plain (the record is in %s)", err, p)
	}
	return err
}
