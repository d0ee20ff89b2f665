package negotiate

import (
	"errors"
	"testing"
)

// Offers come from any peer: parsing must never panic, must fail only with
// our sentinels, and what it accepts must survive being sent on unchanged.
func FuzzParseOffer(f *testing.F) {
	for _, s := range []string{
		qxmppOfferIBB, seedOffer, pidginOffer,
		offerWith(datedFile1, ibbOption), offerWith(datedFile2, s5bOption+ibbOption),
		offerWith(plainFile, ``),
		offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a' size='1'><desc>x</desc><range offset='1'/></file>`, ibbOption),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := ParseOffer(data)
		if err != nil {
			if !errors.Is(err, ErrBadOffer) && !errors.Is(err, ErrBadProfile) && !errors.Is(err, ErrNoValidStreams) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		b, err := o.Marshal()
		if err != nil {
			t.Fatalf("parsed %+v but cannot send it: %v", o, err)
		}
		back, err := ParseOffer(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !equalOffer(back, o) {
			t.Fatalf("round trip changed\n%+v\nto\n%+v\nvia %s", o, back, b)
		}
	})
}

func FuzzParseAccept(f *testing.F) {
	for _, s := range []string{
		qxmppAcceptIBB, seedAccept,
		acceptWith(``, s5bValue+ibbValue),
		acceptWith(rangeFile(`offset='252' length='179592'`), ibbValue),
		acceptWith(rangeFile(`offset='-1'`), ibbValue),
		acceptWith(``, `<value>urn:x</value>`),
	} {
		f.Add([]byte(s), true)
	}
	f.Add([]byte(acceptWith(``, `<value>urn:x</value>`)), false)
	f.Fuzz(func(t *testing.T, data []byte, restrict bool) {
		var offered []string
		if restrict {
			offered = []string{MethodS5B, MethodIBB}
		}
		a, err := ParseAccept(data, offered)
		if err != nil {
			if !errors.Is(err, ErrBadAccept) && !errors.Is(err, ErrNoValidStreams) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if a.Method == "" || a.Offset < 0 || a.Length < 0 {
			t.Fatalf("parsed nonsense %+v", a)
		}
		b := a.Marshal()
		back, err := ParseAccept(b, offered)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if *back != *a {
			t.Fatalf("round trip changed %+v to %+v via %s", *a, *back, b)
		}
	})
}
