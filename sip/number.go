package sip

import (
	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/admission"
)

// DialledNumber returns the normalised dialled number of a Request-URI: the
// number classification routes inbound calls by and the engine matches
// emergency numbers, destination classes and rates against
// (admission.NormalizeNumber: no user parameters, no visual separators, a
// leading + kept).
//
//   - sip: and sips: URIs: the user part. With user=phone it is an RFC 3966
//     telephone-subscriber ("+1-555-0100;isub=12"); without, PBXs still put
//     numbers and their parameters there ("911;phone-context=+1"). Both
//     are normalised the same way, so a number cannot dodge a destination
//     class by leaving out user=phone.
//   - tel: URIs: sipgo (v1.7.2) parses only sip/sips, and keeps a tel: URI's
//     number and parameters uninterpreted in Uri.Raw() (User and Host are
//     empty), e.g. "+1-555-0100;phone-context=example.com".
//   - any other scheme (urn:service:sos, ...), or a nil URI: "".
func DialledNumber(u *sip.Uri) string {
	if u == nil {
		return ""
	}
	switch u.Scheme {
	case "sip", "sips", "": // sipgo lower-cases the scheme; "" is sip for sipgo
		return admission.NormalizeNumber(u.User)
	case "tel":
		return admission.NormalizeNumber(u.Raw())
	}
	return ""
}
