package sip

// Checks of the RFC 4475 torture messages in testdata/rfc4475 (see its
// README.md): the MANIFEST and the files agree, no message names a host off
// the machine, Content-Length framing is as the RFC made it, the fuzz seed
// corpus holds every message, and what sipgo's parser makes of them.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

const (
	rfc4475Dir    = "testdata/rfc4475"
	rfc4475Corpus = "testdata/fuzz/FuzzFrontDoor"
)

// rfc4475Columns is MANIFEST.tsv's header row.
var rfc4475Columns = []string{"name", "section", "valid", "method", "tests", "expected", "expected_tcp", "rfc4475"}

type rfc4475Entry struct {
	name, section, valid, method, tests, expected, expectedTCP, rfc string
}

func readRFC4475Manifest(t *testing.T) []rfc4475Entry {
	t.Helper()
	f, err := os.Open(filepath.Join(rfc4475Dir, "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var entries []rfc4475Entry
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != len(rfc4475Columns) {
			t.Fatalf("MANIFEST.tsv:%d: %d columns, want %d", line, len(cols), len(rfc4475Columns))
		}
		if line == 1 {
			if strings.Join(cols, "\t") != strings.Join(rfc4475Columns, "\t") {
				t.Fatalf("MANIFEST.tsv header %q, want %q", cols, rfc4475Columns)
			}
			continue
		}
		entries = append(entries, rfc4475Entry{cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return entries
}

func readRFC4475(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rfc4475Dir, name+".dat"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rfc4475Sections is every test message section of RFC 4475.
func rfc4475Sections() []string {
	var s []string
	for i := 1; i <= 13; i++ {
		s = append(s, fmt.Sprintf("3.1.1.%d", i))
	}
	for i := 1; i <= 19; i++ {
		s = append(s, fmt.Sprintf("3.1.2.%d", i))
	}
	s = append(s, "3.2.1")
	for i := 1; i <= 15; i++ {
		s = append(s, fmt.Sprintf("3.3.%d", i))
	}
	return append(s, "3.4.1")
}

// An expectation starts with pass, drop, close or a status code.
var rfc4475ExpectRE = regexp.MustCompile(`^(pass|drop|close|[1-6][0-9][0-9])\b`)

func TestRFC4475DataManifest(t *testing.T) {
	entries := readRFC4475Manifest(t)
	names := map[string]bool{}
	sections := map[string]string{}
	for _, e := range entries {
		if !regexp.MustCompile(`^[a-z0-9]+$`).MatchString(e.name) || names[e.name] {
			t.Errorf("%s: bad or repeated name", e.name)
		}
		names[e.name] = true
		if other, dup := sections[e.section]; dup {
			t.Errorf("%s: section %s is %s's too", e.name, e.section, other)
		}
		sections[e.section] = e.name
		if e.valid != "yes" && e.valid != "no" {
			t.Errorf("%s: valid %q, want yes or no", e.name, e.valid)
		}
		if strings.HasPrefix(e.section, "3.1.1.") != (e.valid == "yes") && strings.HasPrefix(e.section, "3.1.") {
			t.Errorf("%s: section %s but valid %s", e.name, e.section, e.valid)
		}
		if !rfc4475ExpectRE.MatchString(e.expected) {
			t.Errorf("%s: expected %q does not start with pass, drop, close or a status code", e.name, e.expected)
		}
		if e.expectedTCP != "same" && !rfc4475ExpectRE.MatchString(e.expectedTCP) {
			t.Errorf("%s: expected_tcp %q is neither same nor an expectation", e.name, e.expectedTCP)
		}
		if e.method == "" || e.tests == "" || e.rfc == "" {
			t.Errorf("%s: empty column", e.name)
		}
		if _, err := os.Stat(filepath.Join(rfc4475Dir, e.name+".dat")); err != nil {
			t.Errorf("%s: %v", e.name, err)
		}
	}
	for _, s := range rfc4475Sections() {
		if _, ok := sections[s]; !ok {
			t.Errorf("RFC 4475 section %s has no entry", s)
		}
	}
	if len(sections) != len(rfc4475Sections()) {
		t.Errorf("%d entries, RFC 4475 has %d messages", len(sections), len(rfc4475Sections()))
	}

	files, err := os.ReadDir(rfc4475Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		switch n := f.Name(); {
		case n == "MANIFEST.tsv" || n == "README.md" || n == ".gitattributes" || n == "gen" && f.IsDir():
		case strings.HasSuffix(n, ".dat"):
			if !names[strings.TrimSuffix(n, ".dat")] {
				t.Errorf("%s is not in MANIFEST.tsv", n)
			}
		default:
			t.Errorf("unexpected file %s in %s", n, rfc4475Dir)
		}
	}
}

// The method column names the start line's method, or response:<code>.
func TestRFC4475DataMethodColumn(t *testing.T) {
	for _, e := range readRFC4475Manifest(t) {
		start, _, _ := strings.Cut(string(readRFC4475(t, e.name)), "\r\n")
		var want string
		if code, ok := strings.CutPrefix(start, "SIP/2.0 "); ok {
			code, _, _ = strings.Cut(code, " ")
			want = "response:" + code
		} else {
			want, _, _ = strings.Cut(start, " ")
		}
		if e.method != want {
			t.Errorf("%s: method column %q, start line says %q", e.name, e.method, want)
		}
	}
}

// --- Hosts ------------------------------------------------------------------

// rfc4475Loopback is where every host of the messages must be.
var rfc4475Loopback = netip.MustParsePrefix("127.0.1.0/24")

var (
	rfc4475IPv4RE = regexp.MustCompile(`[0-9]{1,3}(?:\.[0-9]{1,3}){3}`)
	// Names under the TLDs RFC 4475 uses and others a rewrite could miss.
	rfc4475NameRE = regexp.MustCompile(`(?i)(?:[a-z0-9-]+\.)+(?:com|net|org|edu|example|invalid|test|localhost|local|arpa|info|io)\b|\blocalhost\b`)
	rfc4475SIPRE  = regexp.MustCompile(`(?i)\bsips?:`)
	rfc4475AuthRE = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://`)
	rfc4475ViaRE  = regexp.MustCompile(`(?i)^\s*SIP\s*/\s*[^/\s]+\s*/\s*[^\s;,]+\s+(\[[^\]]*\]|[^\s;,:]+)`)
	rfc4475ParRE  = regexp.MustCompile(`(?i)[;\s](received|maddr)\s*=\s*([^\s;,>?]+)`)
	rfc4475SDPRE  = regexp.MustCompile(`(?m)^[oc]=.*\bIN\s+IP[46]\s+(\S+?)\r?$`)
	rfc4475KeepRE = regexp.MustCompile(`(?im)^(user-agent|server)[ \t]*:.*$`)
)

type rfc4475Host struct{ where, host string }

// rfc4475Hosts lists the hosts a message names, found several independent
// ways, in the raw text and with %-escapes decoded: URIs, Via sent-by,
// received and maddr, SDP addresses, the Call-ID's host, and any IPv4
// literal or DNS-looking name anywhere (product tokens in User-Agent and
// Server excepted).
func rfc4475Hosts(msg []byte) []rfc4475Host {
	var hosts []rfc4475Host
	add := func(where, host string) { hosts = append(hosts, rfc4475Host{where, host}) }

	raw := string(msg)
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	for _, text := range []string{raw, rfc4475Unescape(raw)} {
		scan := rfc4475KeepRE.ReplaceAllString(text, "")
		for _, m := range rfc4475IPv4RE.FindAllStringIndex(scan, -1) {
			if (m[0] > 0 && rfc4475NumChar(scan[m[0]-1])) || (m[1] < len(scan) && rfc4475NumChar(scan[m[1]])) {
				continue
			}
			add("IPv4 literal", scan[m[0]:m[1]])
		}
		for _, name := range rfc4475NameRE.FindAllString(scan, -1) {
			add("DNS name", name)
		}
		for _, m := range rfc4475SIPRE.FindAllStringIndex(scan, -1) {
			uri := scan[m[1]:]
			if i := strings.IndexAny(uri, " \t\r\n<>\""); i >= 0 {
				uri = uri[:i]
			}
			// Check the host after every @: a decoded user part may hold a
			// URI of its own (esc01, semiuri).
			if !strings.Contains(uri, "@") {
				add("SIP URI", rfc4475HostRun(uri))
			}
			for i := 0; i < len(uri); i++ {
				if uri[i] == '@' {
					add("SIP URI", rfc4475HostRun(uri[i+1:]))
				}
			}
		}
		for _, m := range rfc4475AuthRE.FindAllStringIndex(scan, -1) {
			auth := scan[m[1]:]
			if i := strings.IndexAny(auth, " \t\r\n<>\"/?;"); i >= 0 {
				auth = auth[:i]
			}
			if i := strings.LastIndexByte(auth, '@'); i >= 0 {
				auth = auth[i+1:]
			}
			add("URI authority", rfc4475HostRun(auth))
		}
	}

	unfolded := regexp.MustCompile(`\r\n[ \t]+`).ReplaceAllString(head, " ")
	for _, line := range strings.Split(unfolded, "\r\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v":
			for _, v := range strings.Split(value, ",") {
				if m := rfc4475ViaRE.FindStringSubmatch(v); m != nil {
					add("Via sent-by", m[1])
				}
			}
		case "call-id", "i":
			if i := strings.LastIndexByte(value, '@'); i >= 0 {
				if h := rfc4475HostRun(value[i+1:]); strings.Contains(h, ".") && !strings.Contains(h, "..") && !strings.HasSuffix(h, ".") {
					add("Call-ID host", h)
				}
			}
		}
		for _, m := range rfc4475ParRE.FindAllStringSubmatch(line, -1) {
			add(m[1]+" parameter", m[2])
		}
	}
	for _, m := range rfc4475SDPRE.FindAllStringSubmatch(raw, -1) {
		add("SDP address", m[1])
	}
	return hosts
}

func rfc4475NumChar(c byte) bool { return c == '.' || c >= '0' && c <= '9' }

// rfc4475HostRun is the host at the start of s: an IPv6 reference or a run
// of host-name characters (so a port, parameters or escapes end it).
func rfc4475HostRun(s string) string {
	if strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ']'); i >= 0 {
			return s[:i+1]
		}
		return s
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return s[:i]
		}
	}
	return s
}

// rfc4475Unescape decodes every %XX escape that stands for a printable
// ASCII character.
func rfc4475Unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil && v >= 0x21 && v < 0x7f {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestRFC4475DataLoopbackOnly(t *testing.T) {
	for _, e := range readRFC4475Manifest(t) {
		msg := readRFC4475(t, e.name)
		hosts := rfc4475Hosts(msg)
		via := false
		for _, h := range hosts {
			via = via || h.where == "Via sent-by"
			ip, err := netip.ParseAddr(h.host)
			if err != nil || !rfc4475Loopback.Contains(ip) {
				t.Errorf("%s: %s %q is not an address in %v", e.name, h.where, h.host, rfc4475Loopback)
			}
		}
		if !via {
			t.Errorf("%s: no Via sent-by found: the host scan does not see this message", e.name)
		}
	}
}

// The scan itself finds the hosts the rewrite removed.
func TestRFC4475DataHostScanFindsHosts(t *testing.T) {
	for _, tc := range []struct{ msg, host string }{
		{"INVITE sip:user@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.50\r\n\r\n", "example.com"},
		{"OPTIONS sip:127.0.1.50 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.50;received=192.0.2.1\r\n\r\n", "192.0.2.1"},
		{"OPTIONS sip:127.0.1.50 SIP/2.0\r\nv:  SIP / 2.0 / TCP\r\n  spindle   ;branch=x\r\n\r\n", "spindle"},
		{"OPTIONS sip:127.0.1.50 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.50, SIP/2.0/UDP host7\r\n\r\n", "host7"},
		{"INVITE sip:u@127.0.1.50?Route=%3Csip:evil%3E SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.50\r\n\r\n", "evil"},
		{"INVITE sip:sips%3Au%40evil@127.0.1.50 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.50\r\n\r\n", "evil"},
		{"OPTIONS soap.beep://10.1.2.3:3002 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.50\r\n\r\n", "10.1.2.3"},
		{"OPTIONS sip:127.0.1.50 SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::1]:5060\r\n\r\n", "[2001:db8::1]"},
		{"OPTIONS sip:127.0.1.50 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060\r\n\r\n", "127.0.0.1"},
		{"OPTIONS sip:127.0.1.50 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.50\r\n\r\nv=0\r\nc=IN IP4 host.invalid\r\n", "host.invalid"},
	} {
		found := false
		for _, h := range rfc4475Hosts([]byte(tc.msg)) {
			ip, err := netip.ParseAddr(h.host)
			if (err != nil || !rfc4475Loopback.Contains(ip)) && strings.Contains(h.host, tc.host) {
				found = true
			}
		}
		if !found {
			t.Errorf("host %q not found in %q", tc.host, tc.msg)
		}
	}
}

// --- Framing ----------------------------------------------------------------

// rfc4475Framing is how Content-Length frames each message whose framing
// is not simply exact: the rewrite must keep every wrong one wrong.
var rfc4475Framing = map[string]string{
	"clerr":   "beyond the datagram",
	"ncl":     "not a length",
	"mcl01":   "2 Content-Length fields",
	"inv2543": "no Content-Length",
	"baddn":   "no end of header",
	"dblreq":  "octets after the body",
}

var rfc4475CLRE = regexp.MustCompile(`(?im)^(?:content-length|l)[ \t]*:[ \t]*(\S*)`)

func rfc4475FramingOf(msg []byte) string {
	head, body, ok := bytes.Cut(msg, []byte("\r\n\r\n"))
	if !ok {
		return "no end of header"
	}
	cl := rfc4475CLRE.FindAllSubmatch(head, -1)
	switch {
	case len(cl) == 0:
		return "no Content-Length"
	case len(cl) > 1:
		return fmt.Sprintf("%d Content-Length fields", len(cl))
	}
	n, err := strconv.Atoi(string(cl[0][1]))
	switch {
	case err != nil || n < 0:
		return "not a length"
	case n > len(body):
		return "beyond the datagram"
	case n < len(body):
		return "octets after the body"
	}
	return "exact"
}

func TestRFC4475DataFraming(t *testing.T) {
	for _, e := range readRFC4475Manifest(t) {
		want := rfc4475Framing[e.name]
		if want == "" {
			want = "exact"
		}
		if got := rfc4475FramingOf(readRFC4475(t, e.name)); got != want {
			t.Errorf("%s: framing %s, want %s", e.name, got, want)
		}
	}
	// Every message ends its lines with CRLF: no bare LF or CR in a header.
	for _, e := range readRFC4475Manifest(t) {
		head, _, _ := bytes.Cut(readRFC4475(t, e.name), []byte("\r\n\r\n"))
		for i, line := range bytes.Split(head, []byte("\r\n")) {
			if bytes.ContainsAny(line, "\r\n") {
				t.Errorf("%s: header line %d holds a bare CR or LF", e.name, i+1)
			}
		}
	}
}

// --- Fuzz corpus ------------------------------------------------------------

// rfc4475DecodeCorpus decodes a go test fuzz v1 file holding one []byte.
func rfc4475DecodeCorpus(file []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(file, []byte("go test fuzz v1\n"))
	if !ok {
		return nil, fmt.Errorf("no go test fuzz v1 line")
	}
	rest, ok = bytes.CutPrefix(bytes.TrimSuffix(rest, []byte("\n")), []byte("[]byte("))
	if !ok || !bytes.HasSuffix(rest, []byte(")")) || bytes.Contains(rest, []byte("\n")) {
		return nil, fmt.Errorf("not a single []byte value")
	}
	s, err := strconv.Unquote(string(rest[:len(rest)-1]))
	return []byte(s), err
}

func TestRFC4475DataFuzzCorpus(t *testing.T) {
	files, err := os.ReadDir(rfc4475Corpus)
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string]string{} // sha256 of the data -> corpus file
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(rfc4475Corpus, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		data, err := rfc4475DecodeCorpus(b)
		if err != nil {
			t.Errorf("%s: %v", f.Name(), err)
			continue
		}
		seeds[fmt.Sprintf("%x", sha256.Sum256(data))] = f.Name()
	}
	for _, e := range readRFC4475Manifest(t) {
		msg := readRFC4475(t, e.name)
		file, ok := seeds[fmt.Sprintf("%x", sha256.Sum256(msg))]
		if !ok {
			t.Errorf("%s: no seed in %s (go run ./sip/testdata/rfc4475/gen)", e.name, rfc4475Corpus)
			continue
		}
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", msg)
		if name := fmt.Sprintf("%x", sha256.Sum256(want))[:16]; file != name {
			t.Errorf("%s: seed file %s, go test would name it %s", e.name, file, name)
		}
	}
}

// --- sipgo's parser -----------------------------------------------------------

// What sipgo v1.7.2's parser (sip.NewParser().ParseSIP) does with the
// messages, as found by TestRFC4475DataSipgoParser. The front door cannot
// rely on it: it must reject what sipgo accepts and normalise, or parse
// itself, what sipgo refuses or gets wrong. When sipgo changes, update these
// lists.
var (
	// Valid messages sipgo refuses.
	rfc4475SipgoRejectsValid = map[string]string{}
	// Valid messages sipgo parses, but wrongly (checked below).
	// (wsinv, intmeth and novelsc were, before the parser patches of
	// third_party/sipgo: LWS around "=", ";" and in Via, case-sensitive
	// methods, "." in a URI scheme.)
	rfc4475SipgoMisparses = map[string]string{}

	// Invalid messages sipgo parses without error: the front door's own
	// checks must catch them.
	rfc4475SipgoAcceptsInvalid = map[string]string{
		"baddate":    "Date is not parsed",
		"badvers":    "SIP/7.0 accepted",
		"escruri":    "URI headers in the Request-URI accepted",
		"regbadct":   "headers of a Contact addr-spec accepted",
		"mismatch01": "CSeq method not compared with the method",
		"mismatch02": "CSeq method not compared with the method",
		"badbranch":  "empty branch after the magic cookie accepted",
		"insuf":      "no To, From or Call-ID accepted",
		"multi01":    "duplicate single-value fields accepted (the last CSeq and From win)",
		"mcl01":      "two Content-Length values accepted (the last, 5, frames the body)",
	}
)

// rfc4475Checks holds, for the valid messages, what RFC 4475 says a parser
// must find in them. Each returns the problems found.
var rfc4475Checks = map[string]func(sip.Message) []string{
	"wsinv": func(m sip.Message) (p []string) {
		r := m.(*sip.Request)
		p = append(p, rfc4475Tag("To", r.To().Params, "1918181833n")...)
		p = append(p, rfc4475Tag("From", r.From().Params, "98asjd8")...)
		p = append(p, rfc4475Vias(r, [][3]string{{"UDP", "127.0.1.50", "390skdjuw"}, {"TCP", "127.0.1.50", "z9hG4bK9ikj8"}, {"UDP", "127.0.1.50", "z9hG4bK30239"}})...)
		if r.CSeq().SeqNo != 9 || r.CSeq().MethodName != sip.INVITE {
			p = append(p, "CSeq "+r.CSeq().Value())
		}
		if c := r.Contact(); c == nil || c.Params.GetOr("q", "") != "0.33" {
			p = append(p, "Contact q is not 0.33")
		}
		return append(p, rfc4475BodyLen(m, 152)...)
	},
	"intmeth": func(m sip.Message) (p []string) {
		r := m.(*sip.Request)
		const method = "!interesting-Method0123456789_*+`.%indeed'~"
		if string(r.Method) != method {
			p = append(p, fmt.Sprintf("method %q", r.Method))
		}
		if string(r.CSeq().MethodName) != string(r.Method) {
			p = append(p, fmt.Sprintf("CSeq method %q differs from the method %q", r.CSeq().MethodName, r.Method))
		}
		p = append(p, rfc4475Vias(r, [][3]string{{"TCP", "127.0.1.50", "z9hG4bK-.!%66*_+`'~"}})...)
		return append(p, rfc4475Tag("From", r.From().Params, "_token~1'+`*%!-.")...)
	},
	"novelsc": func(m sip.Message) (p []string) {
		// Refused as "invalid uri scheme" before the scheme patch of
		// third_party/sipgo (RFC 3986 allows "." in a scheme).
		if r := m.(*sip.Request); r.Recipient.Scheme != "soap.beep" {
			p = append(p, fmt.Sprintf("Request-URI scheme %q", r.Recipient.Scheme))
		}
		return p
	},
	"esc01": func(m sip.Message) (p []string) {
		r := m.(*sip.Request)
		if u := rfc4475Unescape(r.Recipient.User); u != "sips:user@127.0.1.50" || r.Recipient.Host != "127.0.1.50" {
			p = append(p, fmt.Sprintf("Request-URI user %q host %q", r.Recipient.User, r.Recipient.Host))
		}
		return append(p, rfc4475BodyLen(m, 152)...)
	},
	"escnull": func(m sip.Message) (p []string) {
		if n := len(m.GetHeaders("Contact")); n != 2 {
			p = append(p, fmt.Sprintf("%d Contacts, want 2", n))
		}
		if u := m.To().Address.User; u != "null-%00-null" && u != "null-\x00-null" {
			p = append(p, fmt.Sprintf("To user %q", u))
		}
		return p
	},
	"esc02": func(m sip.Message) (p []string) {
		if r := m.(*sip.Request); r.Method != "RE%47IST%45R" {
			p = append(p, fmt.Sprintf("method %q", r.Method))
		}
		if n := len(m.GetHeaders("Contact")); n != 2 {
			p = append(p, fmt.Sprintf("%d Contacts, want 2", n))
		}
		return p
	},
	"lwsdisp": func(m sip.Message) (p []string) {
		if f := m.From(); f.DisplayName != "caller" {
			p = append(p, fmt.Sprintf("From display name %q", f.DisplayName))
		}
		return append(p, rfc4475Tag("From", m.From().Params, "323")...)
	},
	"longreq": func(m sip.Message) (p []string) {
		if n := len(m.GetHeaders("Via")); n != 34 {
			p = append(p, fmt.Sprintf("%d Via values, want 34", n))
		}
		if m.To().Address.Port != 6000 {
			p = append(p, fmt.Sprintf("To port %d", m.To().Address.Port))
		}
		if tag, _ := m.From().Params.Get("tag"); len(tag) != 155 {
			p = append(p, fmt.Sprintf("From tag of %d characters, want 155", len(tag)))
		}
		return append(p, rfc4475BodyLen(m, 152)...)
	},
	"dblreq": func(m sip.Message) (p []string) {
		if r := m.(*sip.Request); r.Method != sip.REGISTER {
			p = append(p, fmt.Sprintf("method %q", r.Method))
		}
		return append(p, rfc4475BodyLen(m, 0)...)
	},
	"semiuri": func(m sip.Message) (p []string) {
		r := m.(*sip.Request)
		if u := rfc4475Unescape(r.Recipient.User); u != "user;par=u@127.0.1.50" || r.Recipient.Host != "127.0.1.50" {
			p = append(p, fmt.Sprintf("Request-URI user %q host %q", r.Recipient.User, r.Recipient.Host))
		}
		return p
	},
	"transports": func(m sip.Message) []string {
		return rfc4475Vias(m, [][3]string{
			{"UDP", "127.0.1.50", "z9hG4bKkdjuw"}, {"SCTP", "127.0.1.50", "z9hG4bKklasjdhf"}, {"TLS", "127.0.1.50", "z9hG4bK2980unddj"},
			{"UNKNOWN", "127.0.1.50", "z9hG4bKasd0f3en"}, {"TCP", "127.0.1.50", "z9hG4bK0a9idfnee"},
		})
	},
	"mpart01": func(m sip.Message) []string { return rfc4475BodyLen(m, 553) },
	"unreason": func(m sip.Message) (p []string) {
		r := m.(*sip.Response)
		if r.StatusCode != 200 || r.Reason != "= 2**3 * 5**2 но сто девяносто девять - простое" {
			p = append(p, fmt.Sprintf("status %d %q", r.StatusCode, r.Reason))
		}
		return append(p, rfc4475BodyLen(m, 152)...)
	},
	"noreason": func(m sip.Message) (p []string) {
		if r := m.(*sip.Response); r.StatusCode != 100 || r.Reason != "" {
			p = append(p, fmt.Sprintf("status %d %q", r.StatusCode, r.Reason))
		}
		return p
	},
	"unkscm": func(m sip.Message) (p []string) {
		if s := m.(*sip.Request).Recipient.Scheme; !strings.EqualFold(s, "nobodyKnowsThisScheme") {
			p = append(p, fmt.Sprintf("Request-URI scheme %q", s))
		}
		return p
	},
	"unksm2": func(m sip.Message) (p []string) {
		if u := m.To().Address.String(); u != "isbn:2983792873" {
			p = append(p, "To "+u)
		}
		if u := m.From().Address.String(); u != "http://127.0.1.50" {
			p = append(p, "From "+u)
		}
		return append(p, rfc4475Tag("From", m.From().Params, "3234233")...)
	},
	"bext01": func(m sip.Message) (p []string) {
		for name, want := range map[string]string{"Require": "nothingSupportsThis, nothingSupportsThisEither", "Proxy-Require": "noProxiesSupportThis, norDoAnyProxiesSupportThis"} {
			if h := m.(*sip.Request).GetHeader(name); h == nil || h.Value() != want {
				p = append(p, name+" lost")
			}
		}
		return p
	},
	"invut": func(m sip.Message) []string { return rfc4475BodyLen(m, 40) },
	"regaut01": func(m sip.Message) (p []string) {
		if h := m.(*sip.Request).GetHeader("Authorization"); h == nil || h.Value() != "NoOneKnowsThisScheme opaque-data=here" {
			p = append(p, "Authorization lost")
		}
		return p
	},
	"bcast": func(m sip.Message) []string {
		return rfc4475Vias(m, [][3]string{{"UDP", "127.0.1.50", "z9hG4bK1324923"}, {"UDP", "127.0.1.50", "z9hG4bK1saber23"}})
	},
	"zeromf": func(m sip.Message) (p []string) {
		if mf := m.(*sip.Request).MaxForwards(); mf == nil || *mf != 0 {
			p = append(p, "Max-Forwards is not 0")
		}
		return p
	},
	"cparam01": func(m sip.Message) (p []string) {
		c := m.(*sip.Request).Contact()
		if _, ok := c.Address.UriParams.Get("unknownparam"); ok {
			p = append(p, "unknownparam taken as a URI parameter")
		}
		if _, ok := c.Params.Get("unknownparam"); !ok {
			p = append(p, "unknownparam not a Contact parameter")
		}
		return p
	},
	"cparam02": func(m sip.Message) (p []string) {
		c := m.(*sip.Request).Contact()
		if _, ok := c.Address.UriParams.Get("unknownparam"); !ok {
			p = append(p, "unknownparam not a URI parameter")
		}
		return p
	},
	"regescrt": func(m sip.Message) (p []string) {
		c := m.(*sip.Request).Contact()
		if v, ok := c.Address.Headers.Get("Route"); !ok || rfc4475Unescape(v) != "<sip:127.0.1.50>" {
			p = append(p, fmt.Sprintf("Contact URI header Route %q", v))
		}
		if m.(*sip.Request).GetHeader("Route") != nil {
			p = append(p, "a Route header field appeared")
		}
		return p
	},
	"sdp01": func(m sip.Message) []string { return rfc4475BodyLen(m, 152) },
	"inv2543": func(m sip.Message) (p []string) {
		r := m.(*sip.Request)
		if _, ok := r.From().Params.Get("tag"); ok {
			p = append(p, "a From tag appeared")
		}
		if r.Via() == nil || r.Via().Host != "127.0.1.50" {
			p = append(p, "Via lost")
		}
		return append(p, rfc4475BodyLen(m, 107)...)
	},
}

func rfc4475Tag(field string, params sip.HeaderParams, want string) []string {
	if got, _ := params.Get("tag"); got != want {
		return []string{fmt.Sprintf("%s tag %q, want %q (params %q)", field, got, want, params.String())}
	}
	return nil
}

// rfc4475Vias compares the Via values with {transport, host, branch}s.
func rfc4475Vias(m sip.Message, want [][3]string) (p []string) {
	vias := m.GetHeaders("Via")
	if len(vias) != len(want) {
		return []string{fmt.Sprintf("%d Via values, want %d", len(vias), len(want))}
	}
	for i, h := range vias {
		v, ok := h.(*sip.ViaHeader)
		if !ok {
			return []string{fmt.Sprintf("Via %d is a %T", i+1, h)}
		}
		branch, _ := v.Params.Get("branch")
		if got := [3]string{v.Transport, v.Host, branch}; got != want[i] {
			p = append(p, fmt.Sprintf("Via %d is %q, want %q", i+1, got, want[i]))
		}
	}
	return p
}

func rfc4475BodyLen(m sip.Message, want int) []string {
	if n := len(m.Body()); n != want {
		return []string{fmt.Sprintf("body of %d octets, want %d", n, want)}
	}
	return nil
}

func TestRFC4475DataSipgoParser(t *testing.T) {
	p := sip.NewParser()
	rejects, misparses, accepts := map[string]string{}, map[string]string{}, map[string]string{}
	for _, e := range readRFC4475Manifest(t) {
		m, err := p.ParseSIP(readRFC4475(t, e.name))
		switch {
		case e.valid == "yes" && err != nil:
			rejects[e.name] = err.Error()
			t.Logf("%-10s %-8s valid,   sipgo refuses it: %v", e.name, e.section, err)
		case e.valid == "yes":
			check := rfc4475Checks[e.name]
			if check == nil {
				t.Errorf("%s: no check of what sipgo parses", e.name)
				continue
			}
			if probs := check(m); len(probs) > 0 {
				misparses[e.name] = strings.Join(probs, "; ")
				t.Logf("%-10s %-8s valid,   sipgo mis-parses it: %s", e.name, e.section, misparses[e.name])
			}
		case err == nil:
			accepts[e.name] = ""
			t.Logf("%-10s %-8s invalid, sipgo accepts it", e.name, e.section)
		default:
			t.Logf("%-10s %-8s invalid, sipgo refuses it: %v", e.name, e.section, err)
		}
	}
	for _, c := range []struct {
		what        string
		got, listed map[string]string
	}{
		{"valid messages sipgo refuses", rejects, rfc4475SipgoRejectsValid},
		{"valid messages sipgo mis-parses", misparses, rfc4475SipgoMisparses},
		{"invalid messages sipgo accepts", accepts, rfc4475SipgoAcceptsInvalid},
	} {
		if got, listed := rfc4475Keys(c.got), rfc4475Keys(c.listed); got != listed {
			t.Errorf("%s: %s, listed: %s (update the list)", c.what, got, listed)
		}
	}
}

func rfc4475Keys(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}
