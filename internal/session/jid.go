package session

import "strings"

// Bare returns the JID without its resource.
func Bare(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[:i]
	}
	return jid
}

// Resource returns the JID's resource, or "".
func Resource(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[i+1:]
	}
	return ""
}

// Domain returns the JID's domain part.
func Domain(jid string) string {
	b := Bare(jid)
	if i := strings.IndexByte(b, '@'); i >= 0 {
		return b[i+1:]
	}
	return b
}

// Local returns the JID's local part, or "".
func Local(jid string) string {
	b := Bare(jid)
	if i := strings.IndexByte(b, '@'); i >= 0 {
		return b[:i]
	}
	return ""
}

// EqualJID compares JIDs the way servers normalise them for ASCII: local part
// and domain case-insensitively, the resource exactly. (Full PRECIS
// normalisation is the server's job; peers echo what the server stamped.)
func EqualJID(a, b string) bool {
	return strings.EqualFold(Bare(a), Bare(b)) && Resource(a) == Resource(b)
}
