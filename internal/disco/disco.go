// Package disco implements XEP-0030: Service Discovery, as much as xfer
// needs: asking an entity for its identities and features, listing a
// server's items, finding its SOCKS5 proxies (XEP-0065 §4), and answering
// disco#info queries about ourselves.
package disco

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sync"

	"xfer/internal/session"
)

// Namespaces.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
)

// MaxItems bounds how many items of a server are examined: a server is
// trusted, but not to the point of a query per item without end.
const MaxItems = 64

// ErrMalformed is returned for a disco payload that cannot be parsed.
var ErrMalformed = errors.New("disco: malformed reply")

// IQSender is what discovery needs from a session.
type IQSender interface {
	SendIQ(context.Context, *session.IQ) (*session.IQ, error)
}

// Identity is an entity's identity (XEP-0030 §3.1).
type Identity struct {
	Category string `xml:"category,attr"`
	Type     string `xml:"type,attr"`
	Name     string `xml:"name,attr,omitempty"`
}

// Info is a disco#info result.
type Info struct {
	Identities []Identity
	Features   []string
}

// HasFeature reports whether the entity advertises feature ns.
func (i *Info) HasFeature(ns string) bool {
	for _, f := range i.Features {
		if f == ns {
			return true
		}
	}
	return false
}

// HasIdentity reports whether the entity has the given category and type.
func (i *Info) HasIdentity(category, typ string) bool {
	for _, id := range i.Identities {
		if id.Category == category && id.Type == typ {
			return true
		}
	}
	return false
}

type infoQuery struct {
	XMLName    xml.Name   `xml:"http://jabber.org/protocol/disco#info query"`
	Node       string     `xml:"node,attr,omitempty"`
	Identities []Identity `xml:"identity"`
	Features   []struct {
		Var string `xml:"var,attr"`
	} `xml:"feature"`
}

// ParseInfo decodes a disco#info query payload.
func ParseInfo(payload []byte) (*Info, error) {
	var q infoQuery
	if err := xml.Unmarshal(payload, &q); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	info := &Info{Identities: q.Identities}
	for _, f := range q.Features {
		if f.Var != "" {
			info.Features = append(info.Features, f.Var)
		}
	}
	return info, nil
}

// Marshal renders the info as a disco#info result payload.
func (i *Info) Marshal() []byte {
	q := infoQuery{Identities: i.Identities}
	for _, f := range i.Features {
		q.Features = append(q.Features, struct {
			Var string `xml:"var,attr"`
		}{f})
	}
	out, _ := xml.Marshal(q) // plain strings and attributes: cannot fail
	return out
}

// Item is a disco#items entry.
type Item struct {
	JID  string `xml:"jid,attr"`
	Node string `xml:"node,attr,omitempty"`
	Name string `xml:"name,attr,omitempty"`
}

// ParseItems decodes a disco#items query payload.
func ParseItems(payload []byte) ([]Item, error) {
	var q struct {
		XMLName xml.Name `xml:"http://jabber.org/protocol/disco#items query"`
		Items   []Item   `xml:"item"`
	}
	if err := xml.Unmarshal(payload, &q); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	out := q.Items[:0]
	for _, it := range q.Items {
		if it.JID != "" {
			out = append(out, it)
		}
	}
	return out, nil
}

// GetInfo asks jid for its identities and features.
func GetInfo(ctx context.Context, s IQSender, jid string) (*Info, error) {
	res, err := s.SendIQ(ctx, &session.IQ{Type: session.TypeGet, To: jid, Payload: []byte(`<query xmlns='` + NSInfo + `'/>`)})
	if err != nil {
		return nil, fmt.Errorf("disco: info of %s: %w", jid, err)
	}
	return ParseInfo(res.Payload)
}

// GetItems lists jid's items.
func GetItems(ctx context.Context, s IQSender, jid string) ([]Item, error) {
	res, err := s.SendIQ(ctx, &session.IQ{Type: session.TypeGet, To: jid, Payload: []byte(`<query xmlns='` + NSItems + `'/>`)})
	if err != nil {
		return nil, fmt.Errorf("disco: items of %s: %w", jid, err)
	}
	return ParseItems(res.Payload)
}

// FindProxies returns the JIDs of the SOCKS5 bytestream proxies a server
// offers: its items whose identity is proxy/bytestreams (XEP-0065 §4).
// Items that do not answer are skipped; an error is returned only when the
// server's item list cannot be had.
func FindProxies(ctx context.Context, s IQSender, server string) ([]string, error) {
	items, err := GetItems(ctx, s, server)
	if err != nil {
		return nil, err
	}
	if len(items) > MaxItems {
		items = items[:MaxItems]
	}
	found := make([]bool, len(items))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			info, err := GetInfo(ctx, s, it.JID)
			found[i] = err == nil && info.HasIdentity("proxy", "bytestreams")
		}()
	}
	wg.Wait()
	var proxies []string
	for i, ok := range found {
		if ok {
			proxies = append(proxies, items[i].JID)
		}
	}
	return proxies, nil
}

// Handler answers disco#info queries about us with info. Queries for a
// node we do not have get item-not-found.
func Handler(info *Info) session.Handler {
	payload := info.Marshal()
	return func(_ context.Context, iq *session.IQ) ([]byte, error) {
		var q infoQuery
		if err := xml.Unmarshal(iq.Payload, &q); err != nil {
			return nil, session.NewError(session.CondBadRequest, "")
		}
		if q.Node != "" {
			return nil, session.NewError(session.CondItemNotFound, "")
		}
		return payload, nil
	}
}
