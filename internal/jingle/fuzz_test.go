package jingle

import (
	"bytes"
	"testing"
)

// Parse never panics, and what it accepts survives a round trip.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1' initiator='a@b/c'><content creator='initiator' name='f' senders='initiator'><description xmlns='urn:xmpp:jingle:apps:file-transfer:5'><file><name>x.bin</name><size>10</size><desc/><range/><hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>AAAA</hash></file></description><transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='t' mode='tcp'><candidate cid='c' host='127.0.0.1' jid='a@b/c' port='5' priority='8257536' type='direct'/></transport></content></jingle>`,
		`<jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='s1'><content creator='initiator' name='f'><transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='t'><candidate-used cid='c'/></transport></content></jingle>`,
		`<jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='s1'><reason><decline/><text>no</text></reason></jingle>`,
		`<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s1'><checksum xmlns='urn:xmpp:jingle:apps:file-transfer:5' creator='initiator' name='f'><file><hash xmlns='urn:xmpp:hashes:2' algo='sha-1'>AAAA</hash></file></checksum></jingle>`,
		`<jingle xmlns='urn:xmpp:jingle:1' action='transport-replace' sid='s1'><content creator='initiator' name='f'><transport xmlns='urn:xmpp:jingle:transports:ibb:1' sid='i' block-size='4096'/></content></jingle>`,
		`<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s'><content creator='initiator' name='f'><description xmlns='urn:xmpp:jingle:apps:rtp:1'/><security xmlns='urn:xmpp:jingle:jet:0'/></content></jingle>`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		j, err := Parse(payload)
		if err != nil {
			return
		}
		again, err := Parse(j.Marshal())
		if err != nil {
			t.Fatalf("re-parse of %s: %v", j.Marshal(), err)
		}
		if !bytes.Equal(again.Marshal(), j.Marshal()) {
			t.Fatalf("round trip changed:\n%s\n%s", j.Marshal(), again.Marshal())
		}
		if len(j.Contents) > 0 {
			in := &Incoming{c: &call{}, offer: j}
			_, _ = in.File() // never panics on what Parse accepted
		}
		_ = Usable(append(checksumHashes(j), offerHashes(j)...))
	})
}

func checksumHashes(j *Jingle) []Hash {
	if j.Checksum == nil || j.Checksum.File == nil {
		return nil
	}
	return j.Checksum.File.Hashes
}

func offerHashes(j *Jingle) []Hash {
	var out []Hash
	for _, c := range j.Contents {
		if c.Description != nil && c.Description.File != nil {
			out = append(out, c.Description.File.Hashes...)
		}
	}
	return out
}
