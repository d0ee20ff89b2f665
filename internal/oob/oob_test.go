package oob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Query
		wantErr bool
	}{
		{`<query xmlns='jabber:iq:oob'><url>http://example.org/a.txt</url><desc>A</desc></query>`, Query{URL: "http://example.org/a.txt", Desc: "A"}, false},
		{`<query xmlns='jabber:iq:oob' sid='s1'><url> https://x/y </url></query>`, Query{SID: "s1", URL: "https://x/y"}, false},
		{`<query xmlns='jabber:iq:oob'><desc>no url</desc></query>`, Query{}, true},
		{`<query xmlns='jabber:x:oob'><url>http://x/</url></query>`, Query{}, true},
		{`<query xmlns='jabber:iq:oob'><url>http://x/</url>`, Query{}, true},
	} {
		q, err := ParseQuery([]byte(tc.in))
		if tc.wantErr {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: %v, want ErrMalformed", tc.in, err)
			}
			continue
		}
		if err != nil || *q != tc.want {
			t.Errorf("%s: %+v, %v", tc.in, q, err)
		}
	}
}

func TestParseLinks(t *testing.T) {
	in := `<body>https://up/x.jpg</body><x xmlns='jabber:x:oob'><url>https://up/x.jpg</url><desc>cat</desc></x><x xmlns='jabber:x:other'><url>no</url></x><x xmlns='jabber:x:oob'><url/></x>`
	links, err := ParseLinks([]byte(in))
	if err != nil || len(links) != 1 || links[0] != (Link{URL: "https://up/x.jpg", Desc: "cat"}) {
		t.Fatalf("%+v, %v", links, err)
	}
	many := strings.Repeat(`<x xmlns='jabber:x:oob'><url>http://a/</url></x>`, 50)
	if links, _ := ParseLinks([]byte(many)); len(links) != MaxLinks {
		t.Fatalf("%d links, want at most %d", len(links), MaxLinks)
	}
	if got, _ := ParseLinks(MessagePayload(Link{URL: "http://h/a&b"})); len(got) != 1 || got[0].URL != "http://h/a&b" {
		t.Fatalf("round trip %+v", got)
	}
}

func TestCheckURL(t *testing.T) {
	for in, ok := range map[string]bool{
		"http://127.0.0.1:8080/a": true, "HTTPS://example.org/": true,
		"file:///etc/passwd": false, "ftp://x/": false, "javascript:alert(1)": false, "//x/y": false,
		"http:///x": false, "http://user:pw@x/": false, "data:text/plain,hi": false, "": false,
	} {
		if _, err := CheckURL(in); (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v", in, err)
		}
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add([]byte(`<query xmlns='jabber:iq:oob' sid='a'><url>http://example.org/a.txt</url><desc>d</desc></query>`))
	f.Add([]byte(`<query xmlns='jabber:iq:oob'><url>http://x/&amp;</url></query>`))
	f.Add([]byte(`<query/>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		q, err := ParseQuery(in)
		if err != nil {
			return
		}
		if q.URL == "" || len(q.URL) > MaxURLBytes || len(q.Desc) > MaxDescBytes {
			t.Fatalf("accepted %+v", q)
		}
		// Round trip: what we build parses back to the same query
		// (modulo white space the parser trims).
		q2, err := ParseQuery(q.Marshal())
		if err != nil {
			t.Fatalf("round trip of %+v: %v", q, err)
		}
		if strings.TrimSpace(q2.URL) != strings.TrimSpace(q.URL) || q2.SID != q.SID {
			t.Fatalf("round trip %+v → %+v", q, q2)
		}
	})
}

func FuzzParseLinks(f *testing.F) {
	f.Add([]byte(`<body>http://a/b</body><x xmlns='jabber:x:oob'><url>http://a/b</url></x>`))
	f.Add([]byte(`<x xmlns='jabber:x:oob'><url>http://a/b</url><desc>z</desc></x><x xmlns='jabber:x:oob'/>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		links, _ := ParseLinks(in)
		if len(links) > MaxLinks {
			t.Fatalf("%d links", len(links))
		}
		for _, l := range links {
			if l.URL == "" || len(l.URL) > MaxURLBytes {
				t.Fatalf("link %+v", l)
			}
			back, err := ParseLinks(l.Marshal())
			if err != nil || len(back) != 1 || back[0].URL != strings.TrimSpace(l.URL) {
				t.Fatalf("round trip %+v → %+v, %v", l, back, err)
			}
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 5-9/*", "bytes 9-5/10", "bytes 0-9/5", "bytes x-1/2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		start, total, err := parseContentRange(h)
		if err == nil && (start < 0 || (total >= 0 && total <= start)) {
			t.Fatalf("%q → %d/%d", h, start, total)
		}
	})
}

func get(t *testing.T, url string, o GetOptions) ([]byte, *Download, error) {
	t.Helper()
	d, err := Get(context.Background(), url, o)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	var b bytes.Buffer
	_, err = d.WriteTo(&b)
	return b.Bytes(), d, err
}

func TestGet(t *testing.T) {
	content := bytes.Repeat([]byte("xfer"), 10000)
	mod := time.Now().Add(-time.Hour)
	mux := http.NewServeMux()
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "file", mod, bytes.NewReader(content))
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush() // no Content-Length
		w.Write(content)
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write(content[:50])
		panic(http.ErrAbortHandler)
	})
	mux.HandleFunc("/toftp", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "ftp://127.0.0.1/x", http.StatusFound)
	})
	mux.HandleFunc("/tofile", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/file", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.Write([]byte("a"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/bogus206", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Range", "bytes 0-9/10")
		w.WriteHeader(http.StatusPartialContent)
		w.Write(content[:10])
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()

	b, d, err := get(t, ts.URL+"/file", GetOptions{})
	if err != nil || !bytes.Equal(b, content) || d.Size != int64(len(content)) || d.LastModified == "" {
		t.Fatalf("whole file: %d bytes, %v", len(b), err)
	}
	b, d, err = get(t, ts.URL+"/file", GetOptions{Offset: 1000, IfRange: mod.UTC().Format(http.TimeFormat)})
	if err != nil || !bytes.Equal(b, content[1000:]) || d.Offset != 1000 {
		t.Fatalf("range: %d bytes from %v, %v", len(b), d, err)
	}
	// A changed file (validator mismatch): the whole file from 0.
	b, d, err = get(t, ts.URL+"/file", GetOptions{Offset: 1000, IfRange: `"other"`})
	if err != nil || !bytes.Equal(b, content) || d.Offset != 0 {
		t.Fatalf("if-range mismatch: %d bytes, %v", len(b), err)
	}
	if b, _, err = get(t, ts.URL+"/chunked", GetOptions{}); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("chunked: %d, %v", len(b), err)
	}
	if _, _, err = get(t, ts.URL+"/chunked", GetOptions{MaxSize: 100}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("chunked over MaxSize: %v", err)
	}
	if _, _, err = get(t, ts.URL+"/file", GetOptions{MaxSize: 100}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("declared over MaxSize: %v", err)
	}
	if _, _, err = get(t, ts.URL+"/short", GetOptions{}); !errors.Is(err, ErrFetch) {
		t.Fatalf("short: %v", err)
	}
	if _, _, err = get(t, ts.URL+"/nothing", GetOptions{}); !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v", err)
	}
	if _, _, err = get(t, ts.URL+"/toftp", GetOptions{}); !errors.Is(err, ErrScheme) {
		t.Fatalf("redirect to ftp: %v", err)
	}
	if b, _, err = get(t, ts.URL+"/tofile", GetOptions{}); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("redirect: %v", err)
	}
	if _, _, err = get(t, ts.URL+"/slow", GetOptions{StallTimeout: 200 * time.Millisecond}); !errors.Is(err, ErrStalled) {
		t.Fatalf("stall: %v", err)
	}
	if _, _, err = get(t, ts.URL+"/bogus206", GetOptions{}); !errors.Is(err, ErrFetch) {
		t.Fatalf("206 without a range: %v", err)
	}
	if _, _, err = get(t, "file:///etc/passwd", GetOptions{}); !errors.Is(err, ErrScheme) {
		t.Fatalf("file URL: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Get(ctx, ts.URL+"/file", GetOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a file.bin")
	content := bytes.Repeat([]byte{1, 2, 3}, 5000)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Serve(ctx, "127.0.0.1:0", p, "a file.bin", &ServeOptions{Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") || !strings.HasSuffix(s.URL, "/a%20file.bin") {
		t.Fatalf("URL %s", s.URL)
	}
	tok := strings.Split(strings.TrimPrefix(s.URL, "http://"), "/")[1]
	if len(tok) != 32 {
		t.Fatalf("token %q is not 128 bits of hex", tok)
	}
	b, _, err := get(t, s.URL, GetOptions{})
	if err != nil || !bytes.Equal(b, content) || s.Served() != int64(len(content)) || progress.Len() != len(content) {
		t.Fatalf("GET: %d bytes, %v, served %d", len(b), err, s.Served())
	}
	b, _, err = get(t, s.URL, GetOptions{Offset: 10000})
	if err != nil || !bytes.Equal(b, content[10000:]) {
		t.Fatalf("range: %d bytes, %v", len(b), err)
	}
	base := strings.TrimSuffix(s.URL, "/"+tok+"/a%20file.bin")
	for _, u := range []string{base + "/", base + "/" + tok, base + "/" + tok + "/other", base + "/" + strings.Repeat("0", 32) + "/a%20file.bin", base + "/../" + tok + "/a%20file.bin/x"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %s", u, resp.Status)
		}
	}
	resp, err := http.Post(s.URL, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s", resp.Status)
	}
	cancel() // the context ends the server
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(s.URL)
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("still serving after the context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func ExampleQuery_Marshal() {
	fmt.Println(string((&Query{SID: "s1", URL: "http://127.0.0.1:8080/f.txt", Desc: "notes"}).Marshal()))
	// Output: <query xmlns="jabber:iq:oob" sid="s1"><url>http://127.0.0.1:8080/f.txt</url><desc>notes</desc></query>
}
