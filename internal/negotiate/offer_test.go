package negotiate

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// Payloads as real clients send them.
const (
	// QXmpp 1.4, /work/shared/captures/qxmpp-send-ibb.txt.
	qxmppOfferIBB  = `<si xmlns="http://jabber.org/protocol/si" id="a98e2c6e-f146-40fd-9a6e-1e75ad2f7308" profile="http://jabber.org/protocol/si/profile/file-transfer"><file xmlns="http://jabber.org/protocol/si/profile/file-transfer" date="2026-11-24T04:03:08.834Z" hash="920bca8a303955e8a1e5689ae9368d75" name="photo.jpg" size="10000"><desc>qxfer</desc></file><feature xmlns="http://jabber.org/protocol/feature-neg"><x xmlns="jabber:x:data" type="form"><field type="list-single" var="stream-method"><option><value>http://jabber.org/protocol/ibb</value></option></field></x></feature></si>`
	qxmppAcceptIBB = `<si xmlns='http://jabber.org/protocol/si' profile='http://jabber.org/protocol/si/profile/file-transfer'><feature xmlns='http://jabber.org/protocol/feature-neg'><x xmlns='jabber:x:data' type='submit'><field type='list-single' var='stream-method'><value>http://jabber.org/protocol/ibb</value></field></x></feature></si>`

	// QXmpp through Openfire, pretty-printed, /work/shared/seed-xmpp-file-transfer.txt.
	seedOffer = `<si xmlns="http://jabber.org/protocol/si" 
                id="MsVtTkTuwqKQhMBxUsuM66qLgEG9r4Cr" 
                profile="http://jabber.org/protocol/si/profile/file-transfer">
                <file xmlns="http://jabber.org/protocol/si/profile/file-transfer" 
                    date="2009-07-14T04:52:25.650Z" 
                    hash="076e3caed758a1c18c91a0e9cae3368f" 
                    name="Chrysanthemum.jpg" 
                    size="879394"/>
                <feature xmlns="http://jabber.org/protocol/feature-neg">
                    <x xmlns="jabber:x:data" type="form">
                        <field type="list-single" var="stream-method">
                            <option><value>http://jabber.org/protocol/ibb</value></option>
                            <option><value>http://jabber.org/protocol/bytestreams</value></option>
                        </field>
                    </x>
                </feature>
            </si>`
	seedAccept = `<si xmlns="http://jabber.org/protocol/si" 
        profile="http://jabber.org/protocol/si/profile/file-transfer">
        <feature xmlns="http://jabber.org/protocol/feature-neg">
            <x xmlns="jabber:x:data" type="submit">
                <field type="list-single" var="stream-method">
                    <value>http://jabber.org/protocol/bytestreams</value>
                </field>
            </x>
        </feature>
    </si>`

	// Pidgin-style: libpurple sends neither hash nor date.
	pidginOffer = `<si xmlns='http://jabber.org/protocol/si' id='purple4a1b2c3d' mime-type='application/octet-stream' profile='http://jabber.org/protocol/si/profile/file-transfer'><file xmlns='http://jabber.org/protocol/si/profile/file-transfer' size='42' name='notes.txt'><range/></file><feature xmlns='http://jabber.org/protocol/feature-neg'><x xmlns='jabber:x:data' type='form'><field var='stream-method' type='list-single'><option><value>http://jabber.org/protocol/bytestreams</value></option><option><value>http://jabber.org/protocol/ibb</value></option></field></x></feature></si>`
)

func offerWith(file, methods string) string {
	return `<si xmlns='http://jabber.org/protocol/si' id='s1' profile='http://jabber.org/protocol/si/profile/file-transfer'>` + file +
		`<feature xmlns='http://jabber.org/protocol/feature-neg'><x xmlns='jabber:x:data' type='form'><field var='stream-method' type='list-single'>` + methods + `</field></x></feature></si>`
}

const (
	ibbOption  = `<option><value>http://jabber.org/protocol/ibb</value></option>`
	s5bOption  = `<option><value>http://jabber.org/protocol/bytestreams</value></option>`
	plainFile  = `<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a.bin' size='5'/>`
	datedFile1 = `<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a.bin' size='5' date='2009-07-14T04:52:25Z'/>`
	datedFile2 = `<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a.bin' size='5' date='2009-07-14T06:52:25.650+02:00'/>`
)

func TestParseOffer(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want *Offer
		err  error
	}{
		{"qxmpp", qxmppOfferIBB, &Offer{
			SID:     "a98e2c6e-f146-40fd-9a6e-1e75ad2f7308",
			File:    File{Name: "photo.jpg", Size: 10000, Hash: "920bca8a303955e8a1e5689ae9368d75", Date: time.Date(2026, 11, 24, 4, 3, 8, 834e6, time.UTC), Desc: "qxfer"},
			Methods: []string{MethodIBB},
		}, nil},
		{"seed, pretty-printed", seedOffer, &Offer{
			SID:     "MsVtTkTuwqKQhMBxUsuM66qLgEG9r4Cr",
			File:    File{Name: "Chrysanthemum.jpg", Size: 879394, Hash: "076e3caed758a1c18c91a0e9cae3368f", Date: time.Date(2009, 7, 14, 4, 52, 25, 650e6, time.UTC)},
			Methods: []string{MethodIBB, MethodS5B},
		}, nil},
		{"pidgin, no hash or date", pidginOffer, &Offer{
			SID:      "purple4a1b2c3d",
			MimeType: "application/octet-stream",
			File:     File{Name: "notes.txt", Size: 42, CanRange: true},
			Methods:  []string{MethodS5B, MethodIBB},
		}, nil},
		{"date without milliseconds", offerWith(datedFile1, ibbOption), &Offer{
			SID: "s1", File: File{Name: "a.bin", Size: 5, Date: time.Date(2009, 7, 14, 4, 52, 25, 0, time.UTC)}, Methods: []string{MethodIBB},
		}, nil},
		{"date with offset", offerWith(datedFile2, ibbOption), &Offer{
			SID: "s1", File: File{Name: "a.bin", Size: 5, Date: time.Date(2009, 7, 14, 4, 52, 25, 650e6, time.UTC)}, Methods: []string{MethodIBB},
		}, nil},
		{"date without zone is UTC", offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a.bin' size='5' date='2009-07-14T04:52:25.650'/>`, ibbOption), &Offer{
			SID: "s1", File: File{Name: "a.bin", Size: 5, Date: time.Date(2009, 7, 14, 4, 52, 25, 650e6, time.UTC)}, Methods: []string{MethodIBB},
		}, nil},
		{"microseconds truncated", offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a.bin' size='5' date='2009-07-14T04:52:25.650999Z'/>`, ibbOption), &Offer{
			SID: "s1", File: File{Name: "a.bin", Size: 5, Date: time.Date(2009, 7, 14, 4, 52, 25, 650e6, time.UTC)}, Methods: []string{MethodIBB},
		}, nil},
		{"garbage date dropped", offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a.bin' size='5' date='yesterday'/>`, ibbOption), &Offer{
			SID: "s1", File: File{Name: "a.bin", Size: 5}, Methods: []string{MethodIBB},
		}, nil},
		{"upper-case hash", offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a.bin' size='5' hash='920BCA8A303955E8A1E5689AE9368D75'/>`, ibbOption), &Offer{
			SID: "s1", File: File{Name: "a.bin", Size: 5, Hash: "920bca8a303955e8a1e5689ae9368d75"}, Methods: []string{MethodIBB},
		}, nil},
		{"sha1 hash dropped", offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a.bin' size='5' hash='da39a3ee5e6b4b0d3255bfef95601890afd80709'/>`, ibbOption), &Offer{
			SID: "s1", File: File{Name: "a.bin", Size: 5}, Methods: []string{MethodIBB},
		}, nil},
		{"non-hex hash dropped", offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a.bin' size='5' hash='zz0bca8a303955e8a1e5689ae9368d75'/>`, ibbOption), &Offer{
			SID: "s1", File: File{Name: "a.bin", Size: 5}, Methods: []string{MethodIBB},
		}, nil},
		{"desc and range", offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a.bin' size='0'><desc>two &amp; three</desc><range/></file>`, s5bOption+ibbOption), &Offer{
			SID: "s1", File: File{Name: "a.bin", Desc: "two & three", CanRange: true}, Methods: []string{MethodS5B, MethodIBB},
		}, nil},
		{"prefixed namespaces", `<si:si xmlns:si='http://jabber.org/protocol/si' id='s1' profile='http://jabber.org/protocol/si/profile/file-transfer'><ft:file xmlns:ft='http://jabber.org/protocol/si/profile/file-transfer' name='a.bin' size='5'/><fn:feature xmlns:fn='http://jabber.org/protocol/feature-neg'><x xmlns='jabber:x:data' type='form'><field var='stream-method'>` + ibbOption + `</field></x></fn:feature></si:si>`, &Offer{
			SID: "s1", File: File{Name: "a.bin", Size: 5}, Methods: []string{MethodIBB},
		}, nil},
		{"other fields ignored", `<si xmlns='http://jabber.org/protocol/si' id='s1' profile='http://jabber.org/protocol/si/profile/file-transfer'>` + plainFile + `<feature xmlns='http://jabber.org/protocol/feature-neg'><x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>x</value></field><field var='stream-method'>` + ibbOption + `</field></x></feature></si>`, &Offer{
			SID: "s1", File: File{Name: "a.bin", Size: 5}, Methods: []string{MethodIBB},
		}, nil},

		{"other profile", strings.Replace(qxmppOfferIBB, `profile="http://jabber.org/protocol/si/profile/file-transfer"`, `profile="urn:example:other"`, 1), nil, ErrBadProfile},
		{"no profile", strings.Replace(qxmppOfferIBB, `profile="http://jabber.org/protocol/si/profile/file-transfer"`, ``, 1), nil, ErrBadProfile},
		{"no methods", offerWith(plainFile, ``), nil, ErrNoValidStreams},
		{"blank methods", offerWith(plainFile, `<option><value> </value></option>`), nil, ErrNoValidStreams},
		{"no feature", `<si xmlns='http://jabber.org/protocol/si' id='s1' profile='http://jabber.org/protocol/si/profile/file-transfer'>` + plainFile + `</si>`, nil, ErrNoValidStreams},
		{"no id", strings.Replace(qxmppOfferIBB, `id="a98e2c6e-f146-40fd-9a6e-1e75ad2f7308"`, ``, 1), nil, ErrBadOffer},
		{"no file", offerWith(``, ibbOption), nil, ErrBadOffer},
		{"file in wrong namespace", offerWith(`<file xmlns='urn:x' name='a' size='1'/>`, ibbOption), nil, ErrBadOffer},
		{"no name", offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' size='5'/>`, ibbOption), nil, ErrBadOffer},
		{"no size", offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a'/>`, ibbOption), nil, ErrBadOffer},
		{"negative size", offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a' size='-1'/>`, ibbOption), nil, ErrBadOffer},
		{"fractional size", offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a' size='1.5'/>`, ibbOption), nil, ErrBadOffer},
		{"huge size", offerWith(`<file xmlns='http://jabber.org/protocol/si/profile/file-transfer' name='a' size='99999999999999999999'/>`, ibbOption), nil, ErrBadOffer},
		{"wrong root", `<open xmlns='http://jabber.org/protocol/ibb'/>`, nil, ErrBadOffer},
		{"si in wrong namespace", `<si xmlns='urn:x' id='s1' profile='http://jabber.org/protocol/si/profile/file-transfer'/>`, nil, ErrBadOffer},
		{"empty", ``, nil, ErrBadOffer},
		{"not xml", `<<si`, nil, ErrBadOffer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOffer([]byte(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				if !strings.HasPrefix(err.Error(), "negotiate: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalOffer(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
			// What we parse, we send on the same.
			b, err := got.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseOffer(b)
			if err != nil || !equalOffer(back, got) {
				t.Fatalf("round trip through %s: %+v, %v", b, back, err)
			}
		})
	}
}

func equalOffer(a, b *Offer) bool {
	fa, fb := a.File, b.File
	return a.SID == b.SID && a.MimeType == b.MimeType && slices.Equal(a.Methods, b.Methods) &&
		fa.Name == fb.Name && fa.Size == fb.Size && fa.Hash == fb.Hash && fa.Date.Equal(fb.Date) &&
		fa.Desc == fb.Desc && fa.CanRange == fb.CanRange
}

// Marshal writes what XEP-0095/0096 specify, in the shape QXmpp sends.
func TestMarshalOffer(t *testing.T) {
	o := &Offer{
		SID:      "a98e2c6e-f146-40fd-9a6e-1e75ad2f7308",
		MimeType: "image/jpeg",
		File: File{
			Name:     `ph"o<to>.jpg`,
			Size:     10000,
			Hash:     "920BCA8A303955E8A1E5689AE9368D75",
			Date:     time.Date(2026, 11, 24, 6, 3, 8, 834_567_000, time.FixedZone("", 2*3600)),
			Desc:     "qxfer",
			CanRange: true,
		},
		Methods: []string{MethodS5B, MethodIBB},
	}
	b, err := o.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `<si xmlns="http://jabber.org/protocol/si" id="a98e2c6e-f146-40fd-9a6e-1e75ad2f7308" mime-type="image/jpeg" profile="http://jabber.org/protocol/si/profile/file-transfer">` +
		`<file xmlns="http://jabber.org/protocol/si/profile/file-transfer" name="ph&#34;o&lt;to&gt;.jpg" size="10000" hash="920bca8a303955e8a1e5689ae9368d75" date="2026-11-24T04:03:08.834Z"><desc>qxfer</desc><range></range></file>` +
		`<feature xmlns="http://jabber.org/protocol/feature-neg"><x xmlns="jabber:x:data" type="form"><field var="stream-method" type="list-single">` +
		`<option><value>http://jabber.org/protocol/bytestreams</value></option><option><value>http://jabber.org/protocol/ibb</value></option></field></x></feature></si>`
	if string(b) != want {
		t.Fatalf("got\n%s\nwant\n%s", b, want)
	}

	// Optional parts are left out, not sent empty.
	o = &Offer{SID: "s", File: File{Name: "a", Size: 0}, Methods: []string{MethodIBB}}
	b, err = o.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"hash=", "date=", "mime-type=", "<desc", "<range"} {
		if strings.Contains(string(b), absent) {
			t.Errorf("%s in %s", absent, b)
		}
	}
	if !strings.Contains(string(b), `size="0"`) {
		t.Errorf("size 0 missing from %s", b)
	}
}

func TestMarshalOfferStrict(t *testing.T) {
	good := func() *Offer {
		return &Offer{SID: "s", File: File{Name: "a", Size: 1}, Methods: []string{MethodIBB}}
	}
	for _, tc := range []struct {
		name string
		edit func(*Offer)
	}{
		{"no sid", func(o *Offer) { o.SID = "" }},
		{"no name", func(o *Offer) { o.File.Name = "" }},
		{"negative size", func(o *Offer) { o.File.Size = -1 }},
		{"no methods", func(o *Offer) { o.Methods = nil }},
		{"empty method", func(o *Offer) { o.Methods = []string{MethodS5B, ""} }},
		{"bad hash", func(o *Offer) { o.File.Hash = "abc" }},
		{"date out of range", func(o *Offer) { o.File.Date = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good()
			tc.edit(o)
			if _, err := o.Marshal(); !errors.Is(err, ErrBadOffer) {
				t.Fatalf("err = %v, want ErrBadOffer", err)
			}
		})
	}
	if _, err := good().Marshal(); err != nil {
		t.Fatal(err)
	}
}

func TestChoose(t *testing.T) {
	o := &Offer{Methods: []string{MethodIBB, MethodS5B}}
	if got := o.Choose(MethodS5B, MethodIBB); got != MethodS5B {
		t.Errorf("receiver's preference: got %q", got)
	}
	if got := o.Choose("urn:other"); got != "" {
		t.Errorf("nothing in common: got %q", got)
	}
}
