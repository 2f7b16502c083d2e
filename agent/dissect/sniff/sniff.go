// Package sniff holds what every dissector's Detect answers.
package sniff

// Verdict is what a Detect makes of the first bytes of one direction.
type Verdict uint8

const (
	// No: the bytes do not start the protocol.
	No Verdict = iota
	// Yes: they start it.
	Yes
	// NeedMore: too few bytes to say.
	NeedMore
)

func (v Verdict) String() string {
	switch v {
	case Yes:
		return "yes"
	case NeedMore:
		return "need-more"
	}
	return "no"
}
