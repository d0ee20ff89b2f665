package negotiate

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Accept is the receiver's answer to an offer: the chosen stream method and,
// to resume, the range it wants (XEP-0096 §3.2).
type Accept struct {
	Method string
	Offset int64 // first byte wanted
	Length int64 // bytes wanted from Offset; 0 means to the end of the file
}

// Marshal returns the <si/> payload of the IQ-result accepting an offer.
// A <range/> is sent only when a range is asked for, since a sender that
// did not offer ranges may not understand one; negative values count as 0.
func (a *Accept) Marshal() []byte {
	si := siXML{Feature: methodForm("submit", fieldXML{Values: []string{a.Method}})}
	if a.Offset > 0 || a.Length > 0 {
		r := &rangeXML{}
		if a.Offset > 0 {
			r.Offset = strconv.FormatInt(a.Offset, 10)
		}
		if a.Length > 0 {
			r.Length = strconv.FormatInt(a.Length, 10)
		}
		si.File = &fileXML{Range: r}
	}
	b, err := xml.Marshal(&si)
	if err != nil {
		// Only strings and fixed types: encoding/xml cannot fail on them.
		panic("negotiate: marshal accept: " + err.Error())
	}
	return b
}

// ParseAccept parses the <si/> payload of the result accepting an offer of
// the methods offered. Of several values (old Smack sent two) it takes the
// first that was offered; if offered is empty it takes the first. None
// offered returns an error matching ErrNoValidStreams.
func ParseAccept(payload []byte, offered []string) (*Accept, error) {
	if len(bytes.TrimSpace(payload)) == 0 {
		return nil, fmt.Errorf("%w: empty result", ErrBadAccept)
	}
	var si siXML
	if err := xml.Unmarshal(payload, &si); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadAccept, err)
	}
	f := si.methodField()
	if f == nil {
		return nil, fmt.Errorf("%w: no stream-method field", ErrBadAccept)
	}
	a := &Accept{}
	var got []string
	for _, v := range f.Values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		got = append(got, v)
		if len(offered) == 0 || slices.Contains(offered, v) {
			a.Method = v
			break
		}
	}
	switch {
	case len(got) == 0:
		return nil, fmt.Errorf("%w: no stream method chosen", ErrBadAccept)
	case a.Method == "":
		return nil, fmt.Errorf("%w: peer chose %q, which was not offered", ErrNoValidStreams, got)
	}
	if si.File != nil && si.File.Range != nil {
		var err error
		if s := si.File.Range.Offset; s != "" {
			if a.Offset, err = parseNonNegative(s); err != nil {
				return nil, fmt.Errorf("%w: range offset: %v", ErrBadAccept, err)
			}
		}
		if s := si.File.Range.Length; s != "" {
			if a.Length, err = parseNonNegative(s); err != nil {
				return nil, fmt.Errorf("%w: range length: %v", ErrBadAccept, err)
			}
		}
	}
	return a, nil
}
