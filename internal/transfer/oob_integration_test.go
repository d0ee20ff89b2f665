package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"xfer/internal/disco"
	"xfer/internal/oob"
	"xfer/internal/session"
	"xfer/internal/testserver"
	"xfer/internal/upload"
)

// events collects a receiver's or sender's events.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) observer() *Observer {
	return &Observer{Event: func(ev Event) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }}
}

func (e *events) find(typ string) (Event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.all {
		if ev.Type == typ {
			return ev, true
		}
	}
	return Event{}, false
}

// waitEvent waits until an event of type typ has been seen.
func (e *events) wait(t *testing.T, typ string) Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ev, ok := e.find(typ); ok {
			return ev
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q event in %+v", typ, e.all)
	return Event{}
}

// oobReceiver logs user in with a receiver that has an observer.
func oobReceiver(t *testing.T, user string, opts ReceiveOptions) (*Receiver, *session.Session, *events) {
	t.Helper()
	s := login(t, user, "oob-"+session.NewID()[:6])
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ev := &events{}
	r, err := NewReceiver(ctx, s, opts, ev.observer())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Wait)
	return r, s, ev
}

// countingServer is a loopback HTTP server that counts its requests.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts, &n
}

// iq:oob between two xfer ends, in both directions: the sender serves the
// file on 127.0.0.1 and the receiver answers only once it is stored.
func TestIntegrationOOBBothWays(t *testing.T) {
	for _, pair := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
		from, to := pair[0], pair[1]
		t.Run(from+"→"+to, func(t *testing.T) {
			r, rs, rev := oobReceiver(t, to, ReceiveOptions{Allow: []string{from + "@localhost"}})
			ss := login(t, from, "oob-send")
			src := t.TempDir()
			for _, size := range []int64{0, 1, 3<<20 + 17} {
				name := fmt.Sprintf("oob %d.bin", size)
				p, sum := writeRandom(t, src, name, size)
				sev := &events{}
				sd := &Sender{S: ss, Obs: sev.observer(), Opts: SendOptions{Method: "oob", AcceptTimeout: 20 * time.Second, S5B: S5BOptions{ServerLoopback: true}}}
				res, err := sd.Send(context.Background(), rs.JID(), p)
				if err != nil {
					t.Fatal(err)
				}
				if res.Method != "oob" || !strings.HasPrefix(res.URL, "http://127.0.0.1:") {
					t.Fatalf("sender result %+v", res)
				}
				got, err := next(t, r)
				if err != nil {
					t.Fatal(err)
				}
				if got.Path != filepath.Join(filepath.Dir(got.Path), name) || md5Of(t, got.Path) != sum || got.Size != size || got.Method != "oob" {
					t.Fatalf("received %+v", got)
				}
				if _, err := os.Stat(partName(filepath.Dir(got.Path), name)); !os.IsNotExist(err) {
					t.Fatalf("part file left: %v", err)
				}
				if ev, _ := sev.find("done"); ev.Bytes != size {
					t.Fatalf("sender done event %+v", ev)
				}
			}
			if ev := rev.wait(t, "done"); ev.Method != "oob" {
				t.Fatalf("receiver done event %+v", ev)
			}
			// The server is gone once Send returns: the URL is single-use.
			if ev, _ := rev.find("offer"); ev.URL != "" {
				if resp, err := http.Get(ev.URL); err == nil {
					resp.Body.Close()
					t.Fatalf("URL still served after the transfer: %s", resp.Status)
				}
			}
		})
	}
}

// Refusals of iq:oob offers: a URL that is not http(s), and any URL from a
// sender that is not allowed; neither is fetched.
func TestIntegrationOOBRefusals(t *testing.T) {
	_, bob, rev := oobReceiver(t, "bob", ReceiveOptions{Allow: []string{"alice@localhost"}})
	ts, hits := countingServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "secret") })
	alice := login(t, "alice", "oob-refusals")
	carol := login(t, "carol", "oob-refusals")
	offer := func(from *session.Session, url string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q := &oob.Query{URL: url}
		_, err := from.SendIQ(ctx, &session.IQ{Type: session.TypeSet, To: bob.JID(), Payload: q.Marshal()})
		return err
	}
	notAcceptable := session.NewError(session.CondNotAcceptable, "")
	for _, url := range []string{"file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/", "javascript:alert(1)", "http:///nohost"} {
		if err := offer(alice, url); !errors.Is(err, notAcceptable) {
			t.Errorf("%s: %v, want not-acceptable", url, err)
		}
	}
	if err := offer(carol, ts.URL+"/x.txt"); !errors.Is(err, notAcceptable) {
		t.Errorf("stranger: %v, want not-acceptable", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the receiver fetched %d times", hits.Load())
	}
	if ev := rev.wait(t, "refused"); ev.Method != "oob" {
		t.Fatalf("refused event %+v", ev)
	}
	// The sender's side of a refusal: ErrRefused.
	sd := &Sender{S: carol, Opts: SendOptions{Method: "oob", AcceptTimeout: 10 * time.Second, S5B: S5BOptions{ServerLoopback: true}}}
	p, _ := writeRandom(t, t.TempDir(), "x.bin", 10)
	if _, err := sd.Send(context.Background(), bob.JID(), p); !errors.Is(err, ErrRefused) {
		t.Fatalf("stranger's Send: %v, want ErrRefused", err)
	}
}

// A URL that answers 404: the receiver answers item-not-found, its Next
// reports ErrFetch, and the sender gets ErrFetch with a clear message.
func TestIntegrationOOBNotFound(t *testing.T) {
	r, bob, _ := oobReceiver(t, "bob", ReceiveOptions{Allow: []string{"alice@localhost"}})
	ts, hits := countingServer(t, http.NotFound)
	alice := login(t, "alice", "oob-404")
	p, _ := writeRandom(t, t.TempDir(), "gone.bin", 10)
	sd := &Sender{S: alice, Opts: SendOptions{Method: "oob", AcceptTimeout: 10 * time.Second, OOB: OOBOptions{URL: ts.URL + "/gone.bin"}}}
	_, err := sd.Send(context.Background(), bob.JID(), p)
	if !errors.Is(err, ErrFetch) || !errors.Is(err, session.NewError(session.CondItemNotFound, "")) || !strings.Contains(err.Error(), "could not fetch") {
		t.Fatalf("Send: %v, want ErrFetch (item-not-found)", err)
	}
	if hits.Load() != 1 {
		t.Fatalf("%d requests", hits.Load())
	}
	res, err := next(t, r)
	if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), "404") || res == nil {
		t.Fatalf("receiver: %+v, %v", res, err)
	}
}

// An interrupted download resumes with a Range request (If-Range: the
// validator stored with the part), and a MaxSize over the declared size
// is refused before a byte is written.
func TestIntegrationOOBResumeAndLimit(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 1<<12) // 64 KiB
	var ranges []string
	var mu sync.Mutex
	mod := time.Now().Add(-time.Hour)
	ts, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range")+"|"+r.Header.Get("If-Range"))
		mu.Unlock()
		http.ServeContent(w, r, "big.bin", mod, bytes.NewReader(content))
	})
	dir := t.TempDir()
	r, bob, _ := oobReceiver(t, "bob", ReceiveOptions{Dir: dir, Allow: []string{"alice@localhost"}, MaxSize: 1 << 20})
	alice := login(t, "alice", "oob-resume")
	url := ts.URL + "/big.bin"
	// A part from an earlier, interrupted download of the same URL.
	part := partName(dir, "big.bin")
	if err := os.WriteFile(part, content[:1000], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sidecarName(part), fmt.Appendf(nil, `{"name":"big.bin","size":%d,"from":"alice@localhost","url":%q,"validator":%q}`, len(content), url, mod.UTC().Format(http.TimeFormat)), 0o600); err != nil {
		t.Fatal(err)
	}
	q := &oob.Query{URL: url}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := alice.SendIQ(ctx, &session.IQ{Type: session.TypeSet, To: bob.JID(), Payload: q.Marshal()}); err != nil {
		t.Fatal(err)
	}
	res, err := next(t, r)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(res.Path)
	if !bytes.Equal(got, content) || res.Offset != 1000 {
		t.Fatalf("resumed result %+v, %d bytes", res, len(got))
	}
	if len(ranges) != 1 || !strings.HasPrefix(ranges[0], "bytes=1000-|") {
		t.Fatalf("requests %q", ranges)
	}

	// Over the receiver's MaxSize: not-acceptable, nothing stored.
	big := &oob.Query{URL: ts.URL + "/huge.bin"}
	ts2, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(2<<20))
		w.WriteHeader(200)
	})
	big.URL = ts2.URL + "/huge.bin"
	_, err = alice.SendIQ(ctx, &session.IQ{Type: session.TypeSet, To: bob.JID(), Payload: big.Marshal()})
	if !errors.Is(err, session.NewError(session.CondNotAcceptable, "")) {
		t.Fatalf("over MaxSize: %v", err)
	}
	if _, err := os.Stat(partName(dir, "huge.bin")); !os.IsNotExist(err) {
		t.Fatalf("part written: %v", err)
	}
}

// HTTP File Upload to Prosody's http_file_share, the link received by a
// Receiver with AcceptLinks; curl fetches the same bytes from the URL.
func TestIntegrationUploadLink(t *testing.T) {
	prosodyOnly(t, "HTTP File Upload (http_file_share)")
	r, bob, rev := oobReceiver(t, "bob", ReceiveOptions{Allow: []string{"alice@localhost"}, AcceptLinks: true})
	alice := login(t, "alice", "upload")
	src, sum := writeRandom(t, t.TempDir(), "photo of the cat.jpg", 1<<20+3)
	sev := &events{}
	sd := &Sender{S: alice, Obs: sev.observer(), Opts: SendOptions{Method: "upload", Desc: "the cat"}}
	res, err := sd.Send(context.Background(), bob.JID(), src)
	if err != nil {
		t.Fatalf("%v\n%s", err, srv.Log())
	}
	if res.Method != "upload" || res.Via != srv.UploadJID || !strings.HasPrefix(res.URL, "http://"+srv.HTTPAddr+"/") {
		t.Fatalf("result %+v", res)
	}
	got, err := next(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != "oob" || got.Via != "link" || md5Of(t, got.Path) != sum || filepath.Base(got.Path) != "photo of the cat.jpg" {
		t.Fatalf("received %+v", got)
	}
	if ev := rev.wait(t, "done"); ev.URL != res.URL {
		t.Fatalf("done event %+v", ev)
	}
	// An independent client fetches the same bytes.
	out := filepath.Join(t.TempDir(), "curl.out")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if b, err := exec.CommandContext(ctx, "curl", "-sS", "-f", "-o", out, res.URL).CombinedOutput(); err != nil {
		t.Fatalf("curl: %v: %s", err, b)
	}
	if md5Of(t, out) != sum {
		t.Fatal("curl got other bytes")
	}
}

// Links are fetched only from allowed senders, and only with AcceptLinks.
func TestIntegrationLinkRefusals(t *testing.T) {
	ts, hits := countingServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "x") })
	_, bob, rev := oobReceiver(t, "bob", ReceiveOptions{Allow: []string{"alice@localhost"}, AcceptLinks: true})
	_, bob2, _ := oobReceiver(t, "bob", ReceiveOptions{Allow: []string{"alice@localhost"}})
	carol := login(t, "carol", "links")
	alice := login(t, "alice", "links")
	link := oob.MessagePayload(oob.Link{URL: ts.URL + "/a.txt"})
	if err := carol.SendMessage(bob.JID(), "chat", link); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendMessage(bob.JID(), "chat", oob.MessagePayload(oob.Link{URL: "file:///etc/passwd"})); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendMessage(bob2.JID(), "chat", link); err != nil {
		t.Fatal(err)
	}
	// Two refusals: the stranger's link, and alice's file: URL.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rev.mu.Lock()
		var why []string
		for _, e := range rev.all {
			if e.Type == "refused" {
				why = append(why, e.Error)
			}
		}
		rev.mu.Unlock()
		if len(why) >= 2 {
			all := strings.Join(why, "\n")
			if !strings.Contains(all, "link from carol@localhost/links ignored: not an allowed sender") || !strings.Contains(all, "only http and https") {
				t.Fatalf("refusals: %s", all)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events %+v", rev.all)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// bob2 (no AcceptLinks) ignores the message: a round trip to it
	// proves it has been processed.
	if _, err := disco.GetInfo(context.Background(), alice, bob2.JID()); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 0 {
		t.Fatalf("%d fetches", hits.Load())
	}
}

// A file over the service's max-file-size is refused before any upload.
func TestIntegrationUploadTooLarge(t *testing.T) {
	prosodyOnly(t, "HTTP File Upload (http_file_share)")
	alice := login(t, "alice", "upload-big")
	src, _ := writeRandom(t, t.TempDir(), "big.iso", testserver.UploadSizeLimit+1)
	sd := &Sender{S: alice, Opts: SendOptions{Method: "upload"}}
	_, err := sd.Send(context.Background(), "bob@localhost", src)
	if !errors.Is(err, upload.ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("at most %d", testserver.UploadSizeLimit)) {
		t.Fatalf("Send: %v, want ErrTooLarge naming the limit", err)
	}
	if strings.Contains(srv.Log(), "Issuing upload slot to alice@localhost for 4") {
		t.Fatal("a slot was requested")
	}
}

// Method auto sends over SI to a receiver that advertises it, and uploads
// for a client that does not (a chat client with disco but no SI).
func TestIntegrationAutoChoosesUpload(t *testing.T) {
	prosodyOnly(t, "HTTP File Upload (http_file_share)")
	chat := login(t, "bob", "chatclient")
	chat.Handle(session.TypeGet, disco.NSInfo, disco.Handler(&disco.Info{
		Identities: []disco.Identity{{Category: "client", Type: "phone"}},
		Features:   []string{disco.NSInfo, oob.NSX},
	}))
	links := make(chan []oob.Link, 1)
	chat.OnMessage(func(m session.Message) {
		if l, _ := oob.ParseLinks(m.Payload); len(l) > 0 {
			links <- l
		}
	})
	alice := login(t, "alice", "auto")
	src, _ := writeRandom(t, t.TempDir(), "notes.txt", 1000)
	sev := &events{}
	sd := &Sender{S: alice, Obs: sev.observer(), Opts: SendOptions{Method: "auto"}}
	res, err := sd.Send(context.Background(), chat.JID(), src)
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != "upload" {
		t.Fatalf("result %+v", res)
	}
	if ev, ok := sev.find("fallback"); !ok || !strings.Contains(ev.Error, "does not advertise SI") {
		t.Fatalf("no fallback event saying why: %+v", sev.all)
	}
	select {
	case l := <-links:
		if l[0].URL != res.URL {
			t.Fatalf("link %+v, uploaded to %s", l, res.URL)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no link arrived")
	}
	// A receiver that advertises file transfer gets it: xfer's speaks
	// Jingle, preferred over SI.
	r, bob, _ := oobReceiver(t, "bob", ReceiveOptions{Allow: []string{"alice@localhost"}})
	res, err = (&Sender{S: alice, Opts: SendOptions{Method: "auto", S5B: S5BOptions{ServerLoopback: true}}}).Send(context.Background(), bob.JID(), src)
	if err != nil || res.Method != "jingle-s5b" {
		t.Fatalf("auto to an xfer receiver: %+v, %v", res, err)
	}
	if _, err := next(t, r); err != nil {
		t.Fatal(err)
	}
}

// A receiver that ends right after its one file (receive --once) closes
// before its session: the answer to the out-of-band offer, which tells the
// sender the file arrived, still leaves. Repeated, since the loss it guards
// against was a race.
func TestIntegrationOOBReceiverCloseKeepsAnswer(t *testing.T) {
	ss := login(t, "alice", "oob-close")
	p, _ := writeRandom(t, t.TempDir(), "once.bin", 2000)
	for i := 0; i < 5; i++ {
		r, rs, _ := oobReceiver(t, "bob", ReceiveOptions{Allow: []string{"alice@localhost"}})
		sent := make(chan error, 1)
		go func() {
			sd := &Sender{S: ss, Opts: SendOptions{Method: "oob", AcceptTimeout: 20 * time.Second, S5B: S5BOptions{ServerLoopback: true}}}
			_, err := sd.Send(context.Background(), rs.JID(), p)
			sent <- err
		}()
		if _, err := next(t, r); err != nil {
			t.Fatal(err)
		}
		r.Close()
		rs.Close()
		if err := <-sent; err != nil {
			t.Fatalf("round %d: the sender did not learn of the delivery: %v", i, err)
		}
	}
}
