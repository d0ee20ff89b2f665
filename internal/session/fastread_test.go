package session

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"gosrc.io/xmpp/stanza"
)

const testStreamHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x' from='localhost' version='1.0'>"

// canonical renders XML as its tokens with namespaces resolved and the
// namespace declarations left out, so that two spellings of one element
// (quotes, self-closing or not, escapes) compare equal.
func canonical(raw []byte) string {
	d := xml.NewDecoder(bytes.NewReader(raw))
	var b strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Fprintf(&b, "ERR(%v)", err)
			}
			return b.String()
		}
		switch t := tok.(type) {
		case xml.StartElement:
			fmt.Fprintf(&b, "<{%s}%s", t.Name.Space, t.Name.Local)
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
					continue
				}
				fmt.Fprintf(&b, " {%s}%s=%q", a.Name.Space, a.Name.Local, a.Value)
			}
			b.WriteString(">")
		case xml.EndElement:
			fmt.Fprintf(&b, "</{%s}%s>", t.Name.Space, t.Name.Local)
		case xml.CharData:
			fmt.Fprintf(&b, "%q", t)
		default:
			fmt.Fprintf(&b, "%T", t)
		}
	}
}

// describe renders what a reader returned, for comparing the two readers.
func describe(p any) string {
	switch st := p.(type) {
	case *IQ:
		return fmt.Sprintf("iq id=%q type=%q from=%q to=%q error=%+v payload=%s", st.ID, st.Type, st.From, st.To, st.Error, canonical(st.Payload))
	case *stanza.IQ:
		return describe(fromLibIQ(st))
	case stanza.Message:
		m := fromLibMessage(&st)
		return fmt.Sprintf("message %q %q %q %q %s", m.ID, m.Type, m.From, m.To, canonical(m.Payload))
	default:
		return fmt.Sprintf("%T %+v", p, p)
	}
}

// oldReader reads a stream as the session did before the fast path: the
// library's decoder on a bufio.Reader.
func oldReader(stream string) func() (any, error) {
	dec := xml.NewDecoder(bufio.NewReaderSize(strings.NewReader(stream), 32<<10))
	_, herr := stanza.InitStream(dec)
	return func() (any, error) {
		if herr != nil {
			return nil, herr
		}
		return stanza.NextPacket(dec)
	}
}

// newReader reads a stream as a logged-in session does now.
func newReader(stream string, bufSize int) func() (any, error) {
	rd := newPeekReader(strings.NewReader(stream))
	if bufSize > 0 {
		rd.buf = make([]byte, bufSize)
	}
	xs := &xmlStream{buf: rd}
	herr := xs.readHeader()
	t := &libTransport{rd: rd, dec: xs.dec, fast: xs.defaultNS == nsClient}
	return func() (any, error) {
		if herr != nil {
			return nil, herr
		}
		p, aliased, err := t.next()
		if iq, ok := p.(*IQ); ok && aliased {
			iq.Payload = bytes.Clone(iq.Payload) // the caller keeps it past the next read
		}
		return p, err
	}
}

var fastIQSeeds = []string{
	`<iq type='set' from='alice@localhost/x' to='bob@localhost/y' id='a1'><data xmlns='http://jabber.org/protocol/ibb' seq='0' sid='s1'>QUJD</data></iq>`,
	`<iq type="result" id="a1" from="bob@localhost/y"/>`,
	`<iq type='result' id='a1' to='alice@localhost/x'></iq>`,
	`<iq id='2' type='set'><open xmlns='http://jabber.org/protocol/ibb' sid='s' block-size='4096' stanza='iq'/></iq>`,
	`<iq id='3' type='get' xmlns='jabber:client'><ping xmlns='urn:xmpp:ping' /></iq >`,
	`<iq id='4' type='get'><query xmlns='jabber:iq:version'/></iq>`,
	`<iq id='5' type='get'><ping xmlns='urn:xmpp:ping'>a&amp;b</ping></iq>`,
	`<iq id='6' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
	`<iq id='7' type='set'><data xmlns='http://jabber.org/protocol/ibb' seq='1' sid='s1'>QU
JD</data></iq>`,
	`<iq id='8' type='set'><si xmlns='http://jabber.org/protocol/si'><file/></si></iq>`,
	`<iq id='9' type='set' xml:lang='en' xml:id='x'><data xmlns='http://jabber.org/protocol/ibb' seq='2' sid='s1'>QUJD</data></iq>`,
	`<iq id='10' type='set'><p:data xmlns:p='http://jabber.org/protocol/ibb' seq='2' sid='s1'/></iq>`,
	`<iq id='11' type='set'><data xmlns='http://jabber.org/protocol/ibb' seq='3' sid='s1'>QUJD</date></iq>`,
	`<iq id='12' id='13' type='set'/>`,
	`<iq id='14' type='set' xmlns='urn:other'><data xmlns='http://jabber.org/protocol/ibb'/></iq>`,
	// As Prosody 0.12 routes them:
	`<iq to='bob@localhost/bench' id='554f158c7070e223fb61efa9' type='set' from='alice@localhost/bench' xml:lang='en'><open xmlns='http://jabber.org/protocol/ibb' sid='d761b6567fc1ba408b889348' stanza='iq' block-size='4096'/></iq>`,
	`<iq to='bob@localhost/bench' id='e7142645c78a43d1b7bee630' type='set' from='alice@localhost/bench' xml:lang='en'><data seq='0' sid='d761b6567fc1ba408b889348' xmlns='http://jabber.org/protocol/ibb'>QlXd7daGaVJiR/J9e4mL4NZy0ixoYqHu7PuTcvZL6Y46yNiWhBT/OTbgvXuaZiPuXufm1yfxbBJTSRB2Q6YMbO9HDaCASCn8B4Z0zKA3DMZfonV3KXvJ4mNUww2xNrwH</data></iq>`,
	`<iq to='alice@localhost/bench' id='ff62601ed0f535df0bc049cd' type='result' from='bob@localhost/bench' xml:lang='en'/>`,
	`<iq to='alice@localhost/bench' id='ff62601ed0f535df0bc049ce' type='result' from='bob@localhost/bench' xml:lang='en' xml:lang='fr'/>`,
	`<iq to='alice@localhost/bench' id='ff62601ed0f535df0bc049cf' type='result' xml:lang='en'><data xml:lang='en' xmlns='http://jabber.org/protocol/ibb'/></iq>`,
}

// What the fast path takes, the library reads the same: the same IQ, the
// same payload (up to its spelling), the same length.
func FuzzFastIQ(f *testing.F) {
	registerOnce.Do(registerRawPayloads)
	for _, s := range fastIQSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		iq, n, st := parseFastIQ(in)
		for k := range len(in) {
			// A prefix of what it takes is incomplete, never taken.
			if _, _, pst := parseFastIQ(in[:k]); pst == fastOK && st == fastOK && k < n {
				t.Fatalf("prefix %q taken", in[:k])
			}
		}
		if st != fastOK {
			return
		}
		if n <= 0 || n > len(in) {
			t.Fatalf("length %d of %d", n, len(in))
		}
		dec := xml.NewDecoder(bytes.NewReader([]byte(testStreamHeader + string(in))))
		if _, err := stanza.InitStream(dec); err != nil {
			t.Fatal(err)
		}
		p, err := stanza.NextPacket(dec)
		if err != nil {
			t.Fatalf("fast path took %q, the library fails: %v", in, err)
		}
		if got, want := describe(iq), describe(p); got != want {
			t.Fatalf("%q:\nfast    %s\nlibrary %s", in, got, want)
		}
		if off := int(dec.InputOffset()) - len(testStreamHeader); off != n {
			t.Fatalf("%q: fast path took %d bytes, the library %d", in, n, off)
		}
		if name, ok := fastRootName(iq.Payload); len(iq.Payload) > 0 && (!ok || name != slowRootName(iq.Payload)) {
			t.Fatalf("root name of %q: %v %v", iq.Payload, name, ok)
		}
	})
}

func slowRootName(payload []byte) xml.Name {
	d := xml.NewDecoder(bytes.NewReader(payload))
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.Name{}
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name
		}
	}
}

func FuzzRootName(f *testing.F) {
	for _, s := range []string{`<data xmlns='urn:a' sid='1'>x</data>`, `<a/>`, `<p:a xmlns:p='x'/>`, `<a xmlns="&amp;"/>`, ` <a/>`, `<a b='1' b='2'/>`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if name, ok := fastRootName(in); ok && name != slowRootName(in) {
			t.Fatalf("%q: fast %v, decoder %v", in, name, slowRootName(in))
		}
	})
}

// A stream reads the same, stanza by stanza, through the fast path and the
// library as through the library alone, and fails at the same stanza.
func FuzzReadStanzas(f *testing.F) {
	registerOnce.Do(registerRawPayloads)
	for _, s := range fastIQSeeds {
		f.Add([]byte(s), uint16(0))
	}
	f.Add([]byte(strings.Join(fastIQSeeds[:5], " \n")+`<presence from='a@b/c'><priority>5</priority></presence>`+fastIQSeeds[0]+`<message from='a@b/c' id='m'><body>hi</body></message> `+fastIQSeeds[1]+`</stream:stream>`), uint16(64))
	f.Add([]byte(fastIQSeeds[0]+`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`), uint16(16))
	f.Add([]byte(fastIQSeeds[1]+` x `+fastIQSeeds[0]+`<iq`), uint16(0))
	f.Fuzz(func(t *testing.T, in []byte, bufSize uint16) {
		stream := testStreamHeader + string(in)
		old, cur := oldReader(stream), newReader(stream, int(bufSize))
		for i := 0; ; i++ {
			po, erro := old()
			pn, errn := cur()
			if (erro == nil) != (errn == nil) {
				t.Fatalf("stanza %d of %q: library %v (%s), now %v (%s)", i, in, erro, describe(po), errn, describe(pn))
			}
			if erro != nil {
				return
			}
			if a, b := describe(po), describe(pn); a != b {
				t.Fatalf("stanza %d of %q:\nlibrary %s\nnow     %s", i, in, a, b)
			}
		}
	})
}

func TestFastIQTakesIBB(t *testing.T) {
	for i, want := range []bool{true, true, true, true, true, false, false, false, true, false, false, false, false, false, false, true, true, true, false, false} {
		_, _, st := parseFastIQ([]byte(fastIQSeeds[i]))
		if (st == fastOK) != want {
			t.Errorf("%s: %v", fastIQSeeds[i], st)
		}
	}
}

func TestPeekReaderSmallBuffer(t *testing.T) {
	registerOnce.Do(registerRawPayloads)
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, "<iq type='set' id='%d'><data xmlns='http://jabber.org/protocol/ibb' seq='%d' sid='s'>%s</data></iq>", i, i, strings.Repeat("QUJD", 100*i))
	}
	b.WriteString("</stream:stream>")
	old, cur := oldReader(testStreamHeader+b.String()), newReader(testStreamHeader+b.String(), 7)
	for i := 0; ; i++ {
		po, erro := old()
		pn, errn := cur()
		if !reflect.DeepEqual(describe(po), describe(pn)) || (erro == nil) != (errn == nil) {
			t.Fatalf("stanza %d: %s, %v; %s, %v", i, describe(po), erro, describe(pn), errn)
		}
		if _, ok := pn.(stanza.StreamClosePacket); ok || errn != nil {
			return
		}
	}
}
