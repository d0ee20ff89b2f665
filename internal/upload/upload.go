// Package upload implements XEP-0363: HTTP File Upload. It is how a file
// reaches a contact whose client speaks no Stream Initiation, or who is
// offline: the sender asks its server's upload service for a slot, PUTs
// the file there over HTTP, and shares the slot's GET URL (in a message,
// with XEP-0066's jabber:x:oob, which the oob package builds).
//
// Discover finds the service (disco#items of the server, feature
// urn:xmpp:http:upload:0, max-file-size from the disco#info form),
// RequestSlot asks for a slot, and Put uploads with only the headers the
// XEP allows (Authorization, Cookie, Expires).
package upload

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"xfer/internal/disco"
	"xfer/internal/fault"
	"xfer/internal/oob"
	"xfer/internal/session"
)

// NS is XEP-0363's namespace (version 0.x of the protocol, :0).
const NS = "urn:xmpp:http:upload:0"

// Errors a caller may test with errors.Is.
var (
	ErrNoService = fault.New(fault.Refused, "upload: the server offers no HTTP File Upload service")
	ErrTooLarge  = fault.New(fault.Refused, "upload: the file is larger than the upload service accepts")
	ErrMalformed = fault.New(fault.Transfer, "upload: malformed slot")
	ErrPut       = fault.New(fault.Transfer, "upload: uploading the file failed")
)

// IQSender is what the package needs from a session.
type IQSender interface {
	SendIQ(context.Context, *session.IQ) (*session.IQ, error)
}

// Service is an upload service found by Discover.
type Service struct {
	JID         string
	MaxFileSize int64 // 0: the service does not say
}

// Discover finds the upload service of server (a domain): the server
// itself or one of its items whose disco#info lists NS. Items that do not
// answer are skipped.
func Discover(ctx context.Context, s IQSender, server string) (*Service, error) {
	if svc, err := info(ctx, s, server); err == nil && svc != nil {
		return svc, nil
	}
	items, err := disco.GetItems(ctx, s, server)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoService, err)
	}
	if len(items) > disco.MaxItems {
		items = items[:disco.MaxItems]
	}
	found := make([]*Service, len(items))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, it := range items {
		if it.Node != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			found[i], _ = info(ctx, s, it.JID)
		}()
	}
	wg.Wait()
	for _, svc := range found {
		if svc != nil {
			return svc, nil
		}
	}
	return nil, fmt.Errorf("%w (%s lists no item with %s)", ErrNoService, server, NS)
}

// info asks jid for disco#info and returns it as a Service when it has NS.
func info(ctx context.Context, s IQSender, jid string) (*Service, error) {
	res, err := s.SendIQ(ctx, &session.IQ{Type: session.TypeGet, To: jid, Payload: []byte(`<query xmlns='` + disco.NSInfo + `'/>`)})
	if err != nil {
		return nil, err
	}
	return ParseInfo(jid, res.Payload)
}

// ParseInfo reads a disco#info payload: nil when it lacks NS, else the
// service with the max-file-size of its NS data form, if any.
func ParseInfo(jid string, payload []byte) (*Service, error) {
	di, err := disco.ParseInfo(payload)
	if err != nil {
		return nil, err
	}
	if !di.HasFeature(NS) {
		return nil, nil
	}
	var q struct {
		Forms []struct {
			Fields []struct {
				Var    string   `xml:"var,attr"`
				Values []string `xml:"value"`
			} `xml:"field"`
		} `xml:"jabber:x:data x"`
	}
	_ = xml.Unmarshal(payload, &q) // parsed once already
	svc := &Service{JID: jid}
	for _, f := range q.Forms {
		isUpload, max := false, int64(0)
		for _, fl := range f.Fields {
			if len(fl.Values) == 0 {
				continue
			}
			v := strings.TrimSpace(fl.Values[0])
			switch fl.Var {
			case "FORM_TYPE":
				isUpload = v == NS
			case "max-file-size":
				if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
					max = n
				}
			}
		}
		if isUpload && max > 0 {
			svc.MaxFileSize = max
		}
	}
	return svc, nil
}

// Slot is where to PUT a file and where it can be fetched afterwards.
type Slot struct {
	PutURL  string
	GetURL  string
	Headers http.Header // only Authorization, Cookie and Expires
}

// allowedHeaders are the only PUT headers XEP-0363 §4 lets the service set.
var allowedHeaders = []string{"Authorization", "Cookie", "Expires"}

// MarshalRequest renders a slot request payload.
func MarshalRequest(filename string, size int64, contentType string) []byte {
	out, _ := xml.Marshal(struct {
		XMLName     xml.Name `xml:"urn:xmpp:http:upload:0 request"`
		Filename    string   `xml:"filename,attr"`
		Size        int64    `xml:"size,attr"`
		ContentType string   `xml:"content-type,attr,omitempty"`
	}{Filename: filename, Size: size, ContentType: contentType})
	return out
}

// ParseSlot decodes a <slot/> result. Both URLs must be http or https; a
// header not allowed by the XEP is dropped, as are header values with
// line breaks.
func ParseSlot(payload []byte) (*Slot, error) {
	var el struct {
		XMLName xml.Name `xml:"urn:xmpp:http:upload:0 slot"`
		Put     struct {
			URL     string `xml:"url,attr"`
			Headers []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:",chardata"`
			} `xml:"header"`
		} `xml:"put"`
		Get struct {
			URL string `xml:"url,attr"`
		} `xml:"get"`
	}
	if err := xml.Unmarshal(payload, &el); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	slot := &Slot{PutURL: strings.TrimSpace(el.Put.URL), GetURL: strings.TrimSpace(el.Get.URL), Headers: http.Header{}}
	for _, u := range []string{slot.PutURL, slot.GetURL} {
		if u == "" {
			return nil, fmt.Errorf("%w: missing put or get URL", ErrMalformed)
		}
		if _, err := oob.CheckURL(u); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	for _, h := range el.Put.Headers {
		v := strings.TrimSpace(h.Value)
		if strings.ContainsAny(v, "\r\n\x00") {
			continue
		}
		for _, a := range allowedHeaders {
			if strings.EqualFold(h.Name, a) {
				slot.Headers.Add(a, v)
			}
		}
	}
	return slot, nil
}

// RequestSlot asks the service for a slot for a file. A refusal because of
// the size wraps ErrTooLarge.
func RequestSlot(ctx context.Context, s IQSender, svc *Service, filename string, size int64, contentType string) (*Slot, error) {
	if svc.MaxFileSize > 0 && size > svc.MaxFileSize {
		return nil, tooLarge(svc, size)
	}
	res, err := s.SendIQ(ctx, &session.IQ{Type: session.TypeGet, To: svc.JID, Payload: MarshalRequest(filename, size, contentType)})
	if err != nil {
		var se *session.StanzaError
		if errors.As(err, &se) && se.Condition == session.CondNotAcceptable && strings.Contains(strings.ToLower(se.Text), "large") {
			return nil, fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return nil, fmt.Errorf("upload: slot request to %s: %w", svc.JID, err)
	}
	return ParseSlot(res.Payload)
}

func tooLarge(svc *Service, size int64) error {
	return fmt.Errorf("%w: %d bytes, %s accepts at most %d", ErrTooLarge, size, svc.JID, svc.MaxFileSize)
}

// Put uploads size bytes from body to the slot. Progress, if not nil, sees
// the bytes as they leave. Without client, a client with oob's policy is
// used (bounded connect and response waits, http and https only).
func Put(ctx context.Context, client *http.Client, slot *Slot, body io.Reader, size int64, contentType string, progress io.Writer) error {
	if client == nil {
		client = oob.NewClient()
	}
	if progress != nil {
		body = io.TeeReader(body, progress)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, slot.PutURL, io.NopCloser(body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPut, err)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "xfer")
	for _, a := range allowedHeaders {
		for _, v := range slot.Headers.Values(a) {
			req.Header.Add(a, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPut, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("%w: HTTP %s: %s", ErrPut, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
