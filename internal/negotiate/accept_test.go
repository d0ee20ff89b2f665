package negotiate

import (
	"errors"
	"strings"
	"testing"
)

func acceptWith(file, values string) string {
	return `<si xmlns='http://jabber.org/protocol/si'>` + file +
		`<feature xmlns='http://jabber.org/protocol/feature-neg'><x xmlns='jabber:x:data' type='submit'><field var='stream-method'>` + values + `</field></x></feature></si>`
}

const (
	ibbValue = `<value>http://jabber.org/protocol/ibb</value>`
	s5bValue = `<value>http://jabber.org/protocol/bytestreams</value>`
)

func rangeFile(attrs string) string {
	return `<file xmlns='http://jabber.org/protocol/si/profile/file-transfer'><range ` + attrs + `/></file>`
}

func TestParseAccept(t *testing.T) {
	both := []string{MethodS5B, MethodIBB}
	for _, tc := range []struct {
		name    string
		in      string
		offered []string
		want    Accept
		err     error
	}{
		{"qxmpp", qxmppAcceptIBB, []string{MethodIBB}, Accept{Method: MethodIBB}, nil},
		{"seed, pretty-printed", seedAccept, both, Accept{Method: MethodS5B}, nil},
		// gosrc.io/xmpp re-encodes payloads with an xmlns on every element.
		{"re-encoded", `<si xmlns="http://jabber.org/protocol/si"><feature xmlns="http://jabber.org/protocol/feature-neg"><x xmlns="jabber:x:data" type="submit"><field xmlns="jabber:x:data" var="stream-method"><value xmlns="jabber:x:data">http://jabber.org/protocol/ibb</value></field></x></feature></si>`, both, Accept{Method: MethodIBB}, nil},
		{"old smack, two values", acceptWith(``, s5bValue+ibbValue), both, Accept{Method: MethodS5B}, nil},
		{"two values, first not offered", acceptWith(``, s5bValue+ibbValue), []string{MethodIBB}, Accept{Method: MethodIBB}, nil},
		{"nothing offered to check against", acceptWith(``, `<value>urn:x</value>`), nil, Accept{Method: "urn:x"}, nil},
		{"range offset and length", acceptWith(rangeFile(`offset='252' length='179592'`), ibbValue), both, Accept{Method: MethodIBB, Offset: 252, Length: 179592}, nil},
		{"range offset only", acceptWith(rangeFile(`offset='252'`), ibbValue), both, Accept{Method: MethodIBB, Offset: 252}, nil},
		{"range length only", acceptWith(rangeFile(`length='10'`), ibbValue), both, Accept{Method: MethodIBB, Length: 10}, nil},
		{"empty range", acceptWith(rangeFile(``), ibbValue), both, Accept{Method: MethodIBB}, nil},

		{"not offered", acceptWith(``, `<value>urn:x</value>`), both, Accept{}, ErrNoValidStreams},
		{"no value", acceptWith(``, ``), both, Accept{}, ErrBadAccept},
		{"no field", `<si xmlns='http://jabber.org/protocol/si'><feature xmlns='http://jabber.org/protocol/feature-neg'><x xmlns='jabber:x:data' type='submit'/></feature></si>`, both, Accept{}, ErrBadAccept},
		{"no feature", `<si xmlns='http://jabber.org/protocol/si'/>`, both, Accept{}, ErrBadAccept},
		{"negative offset", acceptWith(rangeFile(`offset='-1'`), ibbValue), both, Accept{}, ErrBadAccept},
		{"garbage length", acceptWith(rangeFile(`length='lots'`), ibbValue), both, Accept{}, ErrBadAccept},
		{"wrong root", `<query xmlns='http://jabber.org/protocol/bytestreams'/>`, both, Accept{}, ErrBadAccept},
		{"empty", ``, both, Accept{}, ErrBadAccept},
		{"blank", " \n", both, Accept{}, ErrBadAccept},
		{"not xml", `<si`, both, Accept{}, ErrBadAccept},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAccept([]byte(tc.in), tc.offered)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.HasPrefix(err.Error(), "negotiate: ") {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tc.want {
				t.Fatalf("got %+v, want %+v", *got, tc.want)
			}
			back, err := ParseAccept(got.Marshal(), tc.offered)
			if err != nil || *back != *got {
				t.Fatalf("round trip through %s: %+v, %v", got.Marshal(), back, err)
			}
		})
	}
}

func TestMarshalAccept(t *testing.T) {
	for _, tc := range []struct {
		in   Accept
		want string
	}{
		{Accept{Method: MethodS5B}, `<si xmlns="http://jabber.org/protocol/si"><feature xmlns="http://jabber.org/protocol/feature-neg"><x xmlns="jabber:x:data" type="submit"><field var="stream-method"><value>http://jabber.org/protocol/bytestreams</value></field></x></feature></si>`},
		{Accept{Method: MethodIBB, Offset: 252, Length: 179592}, `<si xmlns="http://jabber.org/protocol/si"><file xmlns="http://jabber.org/protocol/si/profile/file-transfer"><range offset="252" length="179592"></range></file><feature xmlns="http://jabber.org/protocol/feature-neg"><x xmlns="jabber:x:data" type="submit"><field var="stream-method"><value>http://jabber.org/protocol/ibb</value></field></x></feature></si>`},
		{Accept{Method: MethodIBB, Offset: 7}, `<si xmlns="http://jabber.org/protocol/si"><file xmlns="http://jabber.org/protocol/si/profile/file-transfer"><range offset="7"></range></file><feature xmlns="http://jabber.org/protocol/feature-neg"><x xmlns="jabber:x:data" type="submit"><field var="stream-method"><value>http://jabber.org/protocol/ibb</value></field></x></feature></si>`},
		// Nonsense ranges are not sent.
		{Accept{Method: MethodIBB, Offset: -5, Length: -1}, `<si xmlns="http://jabber.org/protocol/si"><feature xmlns="http://jabber.org/protocol/feature-neg"><x xmlns="jabber:x:data" type="submit"><field var="stream-method"><value>http://jabber.org/protocol/ibb</value></field></x></feature></si>`},
	} {
		if got := string(tc.in.Marshal()); got != tc.want {
			t.Errorf("%+v:\ngot  %s\nwant %s", tc.in, got, tc.want)
		}
	}
}
