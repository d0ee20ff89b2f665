package ibb

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestParseOpen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want openElem
		ok   bool
	}{
		{`<open xmlns='` + NS + `' sid='s1' block-size='4096'/>`, openElem{"s1", 4096, "iq"}, true},
		{`<open xmlns="` + NS + `" block-size="65535" sid="a&amp;b" stanza="iq"></open>`, openElem{"a&b", 65535, "iq"}, true},
		{`<open xmlns='` + NS + `' sid='s' block-size='16' stanza='message'/>`, openElem{"s", 16, "message"}, true},
		{`<open xmlns='` + NS + `' sid='s' block-size='100000'/>`, openElem{"s", 100000, "iq"}, true},
		{`<open xmlns='` + NS + `' sid='s' block-size='0'/>`, openElem{}, false},
		{`<open xmlns='` + NS + `' sid='s' block-size='-1'/>`, openElem{}, false},
		{`<open xmlns='` + NS + `' sid='s' block-size='+5'/>`, openElem{}, false},
		{`<open xmlns='` + NS + `' sid='s' block-size=' 5'/>`, openElem{}, false},
		{`<open xmlns='` + NS + `' sid='s' block-size='99999999999'/>`, openElem{}, false},
		{`<open xmlns='` + NS + `' sid='s'/>`, openElem{}, false},
		{`<open xmlns='` + NS + `' sid='' block-size='5'/>`, openElem{}, false},
		{`<open xmlns='` + NS + `' sid='s' block-size='5' stanza='presence'/>`, openElem{}, false},
		{`<open xmlns='urn:other' sid='s' block-size='5'/>`, openElem{}, false},
		{`<data xmlns='` + NS + `' sid='s' seq='0'/>`, openElem{}, false},
		{`<open`, openElem{}, false},
	} {
		got, err := parseOpen([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseOpen(%s) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestParseData(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want dataElem
		ok   bool
	}{
		{`<data xmlns='` + NS + `' sid='s1' seq='0'>QUJD</data>`, dataElem{"s1", 0, "QUJD"}, true},
		{`<data xmlns='` + NS + `' seq='65535' sid='s1'/>`, dataElem{"s1", 65535, ""}, true},
		{`<data xmlns='` + NS + `' sid='s1' seq='65536'>QUJD</data>`, dataElem{}, false},
		{`<data xmlns='` + NS + `' sid='s1' seq='-1'>QUJD</data>`, dataElem{}, false},
		{`<data xmlns='` + NS + `' sid='s1'>QUJD</data>`, dataElem{}, false},
		{`<data xmlns='` + NS + `' seq='1'>QUJD</data>`, dataElem{}, false},
		{`<data xmlns='` + NS + `' sid='s1' seq='1'><x/></data>`, dataElem{}, false},
		{`<data sid='s1' seq='1'>QUJD</data>`, dataElem{}, false},
	} {
		got, err := parseData([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseData(%s) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestMarshalDataMatchesElement(t *testing.T) {
	raw := []byte("any carnal pleasure")
	a := marshalData("s'1", 7, raw)
	b := dataElem{SID: "s'1", Seq: 7, Data: base64.StdEncoding.EncodeToString(raw)}.marshal()
	if !bytes.Equal(a, b) {
		t.Fatalf("%s != %s", a, b)
	}
	d, err := parseData(a)
	if err != nil || d.SID != "s'1" || d.Seq != 7 {
		t.Fatalf("%+v, %v", d, err)
	}
	if got, err := decodeBlock(d.Data, len(raw)); err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("decode %q, %v", got, err)
	}
	if _, err := decodeBlock(d.Data, len(raw)-1); err == nil {
		t.Fatal("block-size not enforced")
	}
}

// Parsing what we marshal gives back what we parsed.
func FuzzParseOpen(f *testing.F) {
	for _, s := range []string{
		`<open xmlns='` + NS + `' sid='s1' block-size='4096' stanza='iq'/>`,
		`<open xmlns='` + NS + `' sid='a&lt;b&#10;' block-size='0065535'/>`,
		`<open xmlns='` + NS + `' sid='s' block-size='16' stanza='message'/>`,
		`<open xmlns='` + NS + `' sid='s' block-size='1'><x/></open>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		o, err := parseOpen(raw)
		if err != nil {
			return
		}
		back, err := parseOpen(o.marshal())
		if err != nil || back != o {
			t.Fatalf("%+v marshals to %s, parsed back as %+v, %v", o, o.marshal(), back, err)
		}
	})
}

// Parsing what we marshal gives back what we parsed, and strict base64 is
// canonical: whatever decodes re-encodes to the same text.
func FuzzParseData(f *testing.F) {
	for _, s := range []string{
		`<data xmlns='` + NS + `' sid='s1' seq='0'>QUJD</data>`,
		`<data xmlns='` + NS + `' sid='s1' seq='65535'>QR==</data>`,
		`<data xmlns='` + NS + `' sid='s1' seq='7'>QUJD&#10;REVG</data>`,
		`<data xmlns='` + NS + `' sid='s&amp;1' seq='00012'>QQ==</data>`,
		`<data xmlns='` + NS + `' sid='s1' seq='3'/>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := parseData(raw)
		if err != nil {
			return
		}
		back, err := parseData(d.marshal())
		if err != nil || back != d {
			t.Fatalf("%+v marshals to %s, parsed back as %+v, %v", d, d.marshal(), back, err)
		}
		b, err := decodeBlock(d.Data, MaxBlockSize)
		if err != nil {
			return
		}
		if enc := base64.StdEncoding.EncodeToString(b); enc != d.Data {
			t.Fatalf("%q decodes but re-encodes as %q", d.Data, enc)
		}
		if m := marshalData(d.SID, d.Seq, b); !bytes.Equal(m, d.marshal()) {
			t.Fatalf("marshalData %s != %s", m, d.marshal())
		}
	})
}

func FuzzParseClose(f *testing.F) {
	f.Add([]byte(`<close xmlns='` + NS + `' sid='s1'/>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := parseClose(raw)
		if err != nil {
			return
		}
		back, err := parseClose(c.marshal())
		if err != nil || back != c {
			t.Fatalf("%+v marshals to %s, parsed back as %+v, %v", c, c.marshal(), back, err)
		}
	})
}

// What scanData takes, xml.Unmarshal reads the same.
func FuzzScanData(f *testing.F) {
	for _, s := range []string{
		`<data xmlns='` + NS + `' sid='s1' seq='0'>QUJD</data>`,
		`<data xmlns="` + NS + `" seq="65535" sid="s1"/>`,
		`<data xmlns='` + NS + `' sid='s1' seq='7' x='y'>QUJD&#10;REVG</data >`,
		`<data xmlns='` + NS + `' sid='s&amp;1' seq='00012'>QQ==</data>`,
		`<data xmlns='` + NS + `' sid='s1' seq='3'><x/></data>`,
		`<data xmlns='urn:x' sid='s1' seq='3'/>`,
		`<data xmlns='` + NS + `' sid='s1' sid='s2' seq='3'/>`,
		`<data seq='1' sid='' xmlns='` + NS + `'></data>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, ok := scanData(raw)
		if !ok {
			return
		}
		var x xmlData
		if err := xml.Unmarshal(raw, &x); err != nil {
			t.Fatalf("scanData took %q, xml.Unmarshal fails: %v", raw, err)
		}
		same := func(b []byte, has bool, s *string) bool {
			return has == (s != nil) && (s == nil || string(b) == *s)
		}
		if !same(d.sid, d.hasSID, x.SID) || !same(d.seq, d.hasSeq, x.Seq) || string(d.text) != x.Text || d.children || len(x.Children) > 0 {
			t.Fatalf("%q: scanData %+v, xml.Unmarshal %v %v %q %v", raw, d, x.SID, x.Seq, x.Text, x.Children)
		}
	})
}

func FuzzParseSeq(f *testing.F) {
	for _, s := range []string{"0", "65535", "65536", "00012", "+1", "-1", "", "1_0", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseSeq([]byte(s))
		want, err := strconv.ParseUint(s, 10, 16)
		if ok != (err == nil) || ok && uint64(got) != want {
			t.Fatalf("%q: %d %v; ParseUint %d %v", s, got, ok, want, err)
		}
	})
}

// decodeBlockBytes into a buffer gives what decoding a fresh string gives,
// errors included.
func FuzzDecodeBlock(f *testing.F) {
	for _, s := range []string{"QUJD", "QR==", "QQ=A", "QUJD=QUJ", "", "QUJ", strings.Repeat("QUJD", 300) + "QQ==", strings.Repeat("QUJD", 256) + "Q==="} {
		f.Add(s, 4096)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > MaxBlockSize {
			return
		}
		got, err := decodeBlockBytes(make([]byte, 10), []byte(s), max)
		var want []byte
		var werr error
		if len(s) > base64.StdEncoding.EncodedLen(max) || strings.ContainsAny(s, "\r\n") {
			_, werr = decodeBlock(s, max) // the checks before decoding
		} else if want, werr = base64.StdEncoding.Strict().DecodeString(s); werr != nil {
			werr = fmt.Errorf("invalid base64: %v", werr)
		} else if len(want) > max {
			werr = fmt.Errorf("chunk of %d bytes exceeds block-size %d", len(want), max)
		}
		if fmt.Sprint(err) != fmt.Sprint(werr) || werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("%q: %q, %v; want %q, %v", s, got, err, want, werr)
		}
	})
}
