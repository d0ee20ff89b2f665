package negotiate

import (
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// File describes the offered file (XEP-0096 §3.1). Every field of a parsed
// offer comes from the peer: Name in particular must be sanitised before it
// touches the file system.
type File struct {
	Name     string
	Size     int64
	Hash     string    // MD5 of the whole file, lower-case hex; "" if not given
	Date     time.Time // last modification, UTC, millisecond precision; zero if not given
	Desc     string
	CanRange bool // the sender can send a range, so the receiver may resume
}

// Offer is a stream initiation offer of one file.
type Offer struct {
	SID      string // becomes the bytestream's sid
	MimeType string
	File     File
	Methods  []string // stream methods, in the sender's order of preference
}

// dateLayout is XEP-0082's DateTime in UTC with milliseconds, as QXmpp and
// the XEP's examples write it.
const dateLayout = "2006-01-02T15:04:05.000Z"

// Marshal returns the <si/> payload of an IQ-set offering o. It refuses
// offers XEP-0095 or XEP-0096 would call invalid rather than send them.
func (o *Offer) Marshal() ([]byte, error) {
	if o.SID == "" {
		return nil, fmt.Errorf("%w: empty SID", ErrBadOffer)
	}
	if o.File.Name == "" {
		return nil, fmt.Errorf("%w: empty file name", ErrBadOffer)
	}
	if o.File.Size < 0 {
		return nil, fmt.Errorf("%w: negative size %d", ErrBadOffer, o.File.Size)
	}
	if len(o.Methods) == 0 {
		return nil, fmt.Errorf("%w: no stream methods", ErrBadOffer)
	}
	f := fieldXML{Type: "list-single"}
	for _, m := range o.Methods {
		if m == "" {
			return nil, fmt.Errorf("%w: empty stream method", ErrBadOffer)
		}
		f.Options = append(f.Options, optionXML{Value: m})
	}
	fx := &fileXML{
		Name: o.File.Name,
		Size: strconv.FormatInt(o.File.Size, 10),
		Desc: o.File.Desc,
	}
	if o.File.Hash != "" {
		h, ok := normalHash(o.File.Hash)
		if !ok {
			return nil, fmt.Errorf("%w: hash %q is not an MD5 in hex", ErrBadOffer, o.File.Hash)
		}
		fx.Hash = h
	}
	if !o.File.Date.IsZero() {
		d := o.File.Date.UTC()
		if d.Year() < 1 || d.Year() > 9999 {
			return nil, fmt.Errorf("%w: date %v out of range", ErrBadOffer, o.File.Date)
		}
		fx.Date = d.Format(dateLayout)
	}
	if o.File.CanRange {
		fx.Range = &rangeXML{}
	}
	return xml.Marshal(&siXML{
		ID:       o.SID,
		MimeType: o.MimeType,
		Profile:  NSFileTransfer,
		File:     fx,
		Feature:  methodForm("form", f),
	})
}

// ParseOffer parses the <si/> payload of an offer. An unknown profile
// returns an error matching ErrBadProfile, an offer without stream methods
// one matching ErrNoValidStreams, anything else invalid ErrBadOffer.
//
// Optional data that cannot be used is dropped rather than refused: a hash
// that is not 32 hex digits leaves Hash empty (so nothing is verified
// against it) and an unparseable date leaves Date zero.
func ParseOffer(payload []byte) (*Offer, error) {
	var si siXML
	if err := xml.Unmarshal(payload, &si); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	if si.Profile != NSFileTransfer {
		return nil, fmt.Errorf("%w: %q", ErrBadProfile, si.Profile)
	}
	if si.ID == "" {
		return nil, fmt.Errorf("%w: no id", ErrBadOffer)
	}
	if si.File == nil {
		return nil, fmt.Errorf("%w: no <file/>", ErrBadOffer)
	}
	if si.File.Name == "" {
		return nil, fmt.Errorf("%w: no file name", ErrBadOffer)
	}
	size, err := parseNonNegative(si.File.Size)
	if err != nil {
		return nil, fmt.Errorf("%w: size: %v", ErrBadOffer, err)
	}
	o := &Offer{
		SID:      si.ID,
		MimeType: si.MimeType,
		File: File{
			Name:     si.File.Name,
			Size:     size,
			Desc:     si.File.Desc,
			CanRange: si.File.Range != nil,
			Date:     parseDate(si.File.Date),
		},
	}
	o.File.Hash, _ = normalHash(si.File.Hash)
	if f := si.methodField(); f != nil {
		for _, opt := range f.Options {
			if m := strings.TrimSpace(opt.Value); m != "" {
				o.Methods = append(o.Methods, m)
			}
		}
	}
	if len(o.Methods) == 0 {
		return nil, fmt.Errorf("%w: the offer lists none", ErrNoValidStreams)
	}
	return o, nil
}

// normalHash returns h in lower case if it is an MD5 in hex.
func normalHash(h string) (string, bool) {
	h = strings.ToLower(strings.TrimSpace(h))
	if len(h) != 32 {
		return "", false
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", false
	}
	return h, true
}

// dateLayouts are the XEP-0082 forms seen in the wild, most common first;
// RFC 3339 parsing takes optional fractional seconds and any offset.
var dateLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999", // no zone: read as UTC
	"2006-01-02",
}

// parseDate reads an XEP-0082 date, returning the zero time for anything
// it cannot read. The result is truncated to milliseconds so that it
// survives being sent on unchanged.
func parseDate(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	for _, layout := range dateLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		t = t.UTC().Truncate(time.Millisecond)
		if t.Year() < 1 || t.Year() > 9999 {
			return time.Time{}
		}
		return t
	}
	return time.Time{}
}

func parseNonNegative(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("missing")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	if n < 0 {
		return 0, fmt.Errorf("%d is negative", n)
	}
	return n, nil
}
