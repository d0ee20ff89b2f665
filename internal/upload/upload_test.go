package upload

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const prosodySlot = `<slot xmlns='urn:xmpp:http:upload:0'><get url='http://127.0.0.1:5280/file_share/abc/a.txt'/><put url='http://127.0.0.1:5280/file_share/abc/a.txt'><header name='Authorization'>Bearer tok</header><header name='Cookie'>c=1</header><header name='X-Evil'>1</header><header name='Expires'>a
b</header></put></slot>`

func TestParseSlot(t *testing.T) {
	s, err := ParseSlot([]byte(prosodySlot))
	if err != nil {
		t.Fatal(err)
	}
	if s.GetURL != "http://127.0.0.1:5280/file_share/abc/a.txt" || s.PutURL != s.GetURL {
		t.Fatalf("%+v", s)
	}
	if s.Headers.Get("Authorization") != "Bearer tok" || s.Headers.Get("Cookie") != "c=1" || s.Headers.Get("X-Evil") != "" || s.Headers.Get("Expires") != "" {
		t.Fatalf("headers %v", s.Headers)
	}
	for _, bad := range []string{
		`<slot xmlns='urn:xmpp:http:upload:0'><get url='file:///etc/passwd'/><put url='http://x/'/></slot>`,
		`<slot xmlns='urn:xmpp:http:upload:0'><put url='http://x/'/></slot>`,
		`<slot xmlns='urn:xmpp:http:upload:1'><get url='http://x/'/><put url='http://x/'/></slot>`,
	} {
		if _, err := ParseSlot([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestParseInfo(t *testing.T) {
	info := `<query xmlns='http://jabber.org/protocol/disco#info'><identity category='store' type='file'/><feature var='urn:xmpp:http:upload:0'/>` +
		`<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:http:upload:0</value></field><field var='max-file-size'><value>4194304</value></field></x></query>`
	svc, err := ParseInfo("upload.localhost", []byte(info))
	if err != nil || svc == nil || svc.MaxFileSize != 4<<20 {
		t.Fatalf("%+v, %v", svc, err)
	}
	svc, err = ParseInfo("proxy", []byte(`<query xmlns='http://jabber.org/protocol/disco#info'><feature var='http://jabber.org/protocol/bytestreams'/></query>`))
	if err != nil || svc != nil {
		t.Fatalf("%+v, %v", svc, err)
	}
}

func TestMarshalRequest(t *testing.T) {
	got := string(MarshalRequest(`a"<b>.txt`, 10, "text/plain"))
	want := `<request xmlns="urn:xmpp:http:upload:0" filename="a&#34;&lt;b&gt;.txt" size="10" content-type="text/plain"></request>`
	if got != want {
		t.Fatalf("%s", got)
	}
}

func TestPut(t *testing.T) {
	var got []byte
	var hdr http.Header
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			http.Error(w, "no", 405)
			return
		}
		hdr = r.Header
		got, _ = io.ReadAll(r.Body)
		if r.Header.Get("Authorization") != "Bearer ok" {
			http.Error(w, "forbidden", 403)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer ts.Close()
	slot := &Slot{PutURL: ts.URL + "/x", GetURL: ts.URL + "/x", Headers: http.Header{"Authorization": {"Bearer ok"}}}
	var progress bytes.Buffer
	if err := Put(context.Background(), nil, slot, strings.NewReader("hello"), 5, "text/plain", &progress); err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello" || progress.String() != "hello" || hdr.Get("Content-Type") != "text/plain" {
		t.Fatalf("server got %q, %v", got, hdr)
	}
	slot.Headers.Set("Authorization", "Bearer bad")
	if err := Put(context.Background(), nil, slot, strings.NewReader("hello"), 5, "", nil); !errors.Is(err, ErrPut) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("refused PUT: %v", err)
	}
}

func FuzzParseSlot(f *testing.F) {
	f.Add([]byte(prosodySlot))
	f.Add([]byte(`<slot xmlns='urn:xmpp:http:upload:0'><get url='https://a/b'/><put url='https://a/c'/></slot>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ParseSlot(in)
		if err != nil {
			return
		}
		if s.PutURL == "" || s.GetURL == "" {
			t.Fatalf("slot without URLs: %+v", s)
		}
		for name, vs := range s.Headers {
			if name != "Authorization" && name != "Cookie" && name != "Expires" {
				t.Fatalf("header %q let through", name)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("header value %q", v)
				}
			}
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	f.Add([]byte(`<query xmlns='http://jabber.org/protocol/disco#info'><feature var='urn:xmpp:http:upload:0'/><x xmlns='jabber:x:data'><field var='FORM_TYPE'><value>urn:xmpp:http:upload:0</value></field><field var='max-file-size'><value>-5</value></field></x></query>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		svc, err := ParseInfo("x", in)
		if err == nil && svc != nil && svc.MaxFileSize < 0 {
			t.Fatalf("negative limit %+v", svc)
		}
	})
}
