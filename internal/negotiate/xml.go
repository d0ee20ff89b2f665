package negotiate

import "encoding/xml"

// The wire form of <si/>, shared by offers and accepts. Child elements
// without a namespace in their tag match any namespace, which tolerates
// payloads re-encoded with a redundant xmlns on every element.
type siXML struct {
	XMLName  xml.Name    `xml:"http://jabber.org/protocol/si si"`
	ID       string      `xml:"id,attr,omitempty"`
	MimeType string      `xml:"mime-type,attr,omitempty"`
	Profile  string      `xml:"profile,attr,omitempty"`
	File     *fileXML    `xml:"http://jabber.org/protocol/si/profile/file-transfer file"`
	Feature  *featureXML `xml:"http://jabber.org/protocol/feature-neg feature"`
}

type fileXML struct {
	Name  string    `xml:"name,attr,omitempty"`
	Size  string    `xml:"size,attr,omitempty"`
	Hash  string    `xml:"hash,attr,omitempty"`
	Date  string    `xml:"date,attr,omitempty"`
	Desc  string    `xml:"desc,omitempty"`
	Range *rangeXML `xml:"range"`
}

type rangeXML struct {
	Offset string `xml:"offset,attr,omitempty"`
	Length string `xml:"length,attr,omitempty"`
}

type featureXML struct {
	X *formXML `xml:"jabber:x:data x"`
}

type formXML struct {
	Type   string     `xml:"type,attr"`
	Fields []fieldXML `xml:"field"`
}

type fieldXML struct {
	Var     string      `xml:"var,attr"`
	Type    string      `xml:"type,attr,omitempty"`
	Options []optionXML `xml:"option"`
	Values  []string    `xml:"value"`
}

type optionXML struct {
	Value string `xml:"value"`
}

// streamMethod is the form field XEP-0095 negotiates the method with.
const streamMethod = "stream-method"

// methodField returns the stream-method field of the feature form, or nil.
func (s *siXML) methodField() *fieldXML {
	if s.Feature == nil || s.Feature.X == nil {
		return nil
	}
	for i := range s.Feature.X.Fields {
		if s.Feature.X.Fields[i].Var == streamMethod {
			return &s.Feature.X.Fields[i]
		}
	}
	return nil
}

func methodForm(typ string, f fieldXML) *featureXML {
	f.Var = streamMethod
	return &featureXML{X: &formXML{Type: typ, Fields: []fieldXML{f}}}
}
