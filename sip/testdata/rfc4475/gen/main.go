// Command gen writes sip/testdata/rfc4475/*.dat and the FuzzFrontDoor seed
// corpus from the RFC 4475 torture messages, with every host rewritten to
// the loopback address 127.0.1.50 ("the Internet" in the adversarial tests).
//
// The source is the bit-exact archive of RFC 4475 (its appendix, a base64
// tar of every message) as sipgo v1.7.2 ships it in sip/testdata/torture;
// its files are byte for byte those of resiprocate's resip/stack/test copy.
// The module cache holds it, checked by go.sum. Run from the repository root:
//
//	go run ./sip/testdata/rfc4475/gen
//
// The rewrite changes hosts and nothing else: every DNS name and IPv4
// literal in the header (Request-URI, Via, Route, Record-Route, Contact,
// From, To, Call-ID, received and maddr parameters, URIs escaped inside
// user parts or URI headers) and in SDP bodies (o= and c= lines) becomes
// 127.0.1.50. Ports stay. User-Agent and Identity values (product tokens and
// base64) and non-SDP bodies are left alone. A Content-Length that was right
// is set to the new body length; one that was wrong (clerr, ncl, mcl01)
// stays exactly as wrong.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// loopback stands for every host of the torture messages.
const loopback = "127.0.1.50"

func main() {
	src := flag.String("src", "", "directory holding valid/ and invalid/ (default: sipgo's sip/testdata/torture in the module cache)")
	out := flag.String("out", "sip/testdata/rfc4475", "where MANIFEST.tsv is and the .dat files go")
	corpus := flag.String("corpus", "sip/testdata/fuzz/FuzzFrontDoor", "fuzz seed corpus directory")
	flag.Parse()
	log.SetFlags(0)

	if *src == "" {
		// The upstream module as downloaded, not the replace in
		// third_party/sipgo (which carries no testdata).
		out, err := exec.Command("go", "mod", "download", "-json", "github.com/emiago/sipgo@v1.7.2").Output()
		var mod struct{ Dir string }
		if err == nil {
			err = json.Unmarshal(out, &mod)
		}
		if err != nil || mod.Dir == "" {
			log.Fatalf("locate sipgo: %v (give -src)", err)
		}
		*src = filepath.Join(mod.Dir, "sip", "testdata", "torture")
	}
	names, err := manifestNames(filepath.Join(*out, "MANIFEST.tsv"))
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(*corpus, 0o755); err != nil {
		log.Fatal(err)
	}
	for _, name := range names {
		orig, err := readSource(*src, name)
		if err != nil {
			log.Fatal(err)
		}
		msg, notes, err := rewriteMessage(orig)
		if err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(*out, name+".dat"), msg, 0o644); err != nil {
			log.Fatal(err)
		}
		seed := corpusFile(msg)
		if err := os.WriteFile(filepath.Join(*corpus, corpusName(seed)), seed, 0o644); err != nil {
			log.Fatal(err)
		}
		log.Printf("%-10s %4d -> %4d bytes  %s", name, len(orig), len(msg), strings.Join(notes, "; "))
	}
}

func manifestNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for first := true; sc.Scan(); first = false {
		if first || sc.Text() == "" {
			continue
		}
		names = append(names, strings.SplitN(sc.Text(), "\t", 2)[0])
	}
	return names, sc.Err()
}

func readSource(dir, name string) ([]byte, error) {
	for _, sub := range []string{"valid", "invalid"} {
		b, err := os.ReadFile(filepath.Join(dir, sub, name+".dat"))
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s.dat: not in %s/valid or %s/invalid", name, dir, dir)
}

// corpusFile encodes one []byte argument the way go test writes a fuzz
// corpus entry (internal/fuzz marshalCorpusFile: "[]byte(%q)").
func corpusFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
}

// corpusName is the name go test gives a corpus entry: the first 16 hex
// digits of the SHA-256 of the file's content.
func corpusName(file []byte) string {
	return fmt.Sprintf("%x", sha256.Sum256(file))[:16]
}

var (
	crlf2 = []byte("\r\n\r\n")

	// A DNS name under the TLDs the RFC uses. The left edge is checked by
	// hand (Go's regexp has no look-behind), see replaceHosts.
	domainRE = regexp.MustCompile(`(?i)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.(?:com|net|org|edu)\b`)
	ipv4RE   = regexp.MustCompile(`[0-9]{1,3}(?:\.[0-9]{1,3}){3}`)

	contentLengthRE = regexp.MustCompile(`(?i)^(content-length|l)([ \t]*:[ \t]*)(\S*)(.*)$`)
	contentTypeRE   = regexp.MustCompile(`(?i)^(content-type|c)[ \t]*:[ \t]*(\S+)`)
	// Header fields whose values are not addresses: product tokens and
	// base64 that may look like host names.
	keepRE = regexp.MustCompile(`(?i)^(user-agent|server|identity)[ \t]*:`)
)

// rewriteMessage rewrites one datagram: a message, and any octets after
// its body (dblreq).
func rewriteMessage(orig []byte) ([]byte, []string, error) {
	var notes []string
	head, after, complete := bytes.Cut(orig, crlf2)
	lines := strings.Split(string(head), "\r\n")

	// Header: rewrite hosts line by line, keeping fields in keepRE.
	var cl []int // indexes of Content-Length lines
	sdp := false
	keep := false
	hosts := 0
	for i, line := range lines {
		if i > 0 && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) {
			// a folded continuation belongs to the field above
		} else {
			keep = keepRE.MatchString(line)
		}
		if contentLengthRE.MatchString(line) {
			cl = append(cl, i)
		}
		if m := contentTypeRE.FindStringSubmatch(line); m != nil && strings.EqualFold(m[2], "application/sdp") {
			sdp = true
		}
		if keep {
			continue
		}
		var n int
		lines[i], n = replaceHosts(line)
		hosts += n
	}
	if !complete {
		notes = append(notes, "no end of header (kept so)")
		return []byte(strings.Join(lines, "\r\n")), append(notes, fmt.Sprintf("%d hosts", hosts)), nil
	}

	// Body: framed by a single, correct Content-Length; else the rest of
	// the datagram.
	body, trailing := after, []byte(nil)
	clRight := false
	if len(cl) == 1 {
		v := contentLengthRE.FindStringSubmatch(lines[cl[0]])[3]
		if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= len(after) {
			body, trailing, clRight = after[:n], after[n:], true
		} else {
			notes = append(notes, fmt.Sprintf("Content-Length %s wrong, kept", v))
		}
	} else if len(cl) > 1 {
		notes = append(notes, fmt.Sprintf("%d Content-Length fields, kept", len(cl)))
	} else {
		notes = append(notes, "no Content-Length")
	}
	newBody := body
	if sdp {
		s, n := replaceHosts(string(body))
		newBody, hosts = []byte(s), hosts+n
	} else if _, n := replaceHosts(string(body)); n > 0 {
		return nil, nil, fmt.Errorf("%d hosts in a body that is not SDP", n)
	}
	if clRight && len(newBody) != len(body) {
		m := contentLengthRE.FindStringSubmatch(lines[cl[0]])
		lines[cl[0]] = m[1] + m[2] + strconv.Itoa(len(newBody)) + m[4]
		notes = append(notes, fmt.Sprintf("Content-Length %d -> %d", len(body), len(newBody)))
	}

	var b bytes.Buffer
	b.WriteString(strings.Join(lines, "\r\n"))
	b.Write(crlf2)
	b.Write(newBody)
	if len(trailing) > 0 {
		// Octets after the body are noise (dblreq: they look like an
		// INVITE): their hosts are rewritten, nothing else.
		t, n := replaceHosts(string(trailing))
		b.WriteString(t)
		hosts += n
		notes = append(notes, fmt.Sprintf("%d octets after the body", len(trailing)))
	}
	return b.Bytes(), append(notes, fmt.Sprintf("%d hosts", hosts)), nil
}

// replaceHosts replaces every DNS name and IPv4 literal in s by loopback
// and says how many it replaced.
func replaceHosts(s string) (string, int) {
	n := 0
	var b strings.Builder
	last := 0
	for _, m := range domainRE.FindAllStringIndex(s, -1) {
		start, end := m[0], m[1]
		// A match right after "%" starts inside an escape: %40example.com
		// matched from "40"; the name begins after the two hex digits.
		if start > 0 && s[start-1] == '%' {
			start += 2
		} else if start > 0 && isHostChar(s[start-1]) {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(loopback)
		last = end
		n++
	}
	b.WriteString(s[last:])
	s = b.String()

	b.Reset()
	last = 0
	for _, m := range ipv4RE.FindAllStringIndex(s, -1) {
		start, end := m[0], m[1]
		if (start > 0 && isNumChar(s[start-1])) || (end < len(s) && isNumChar(s[end])) {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(loopback)
		last = end
		if s[start:end] != loopback {
			n++
		}
	}
	b.WriteString(s[last:])
	return b.String(), n
}

func isHostChar(c byte) bool {
	return c == '.' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isNumChar(c byte) bool { return c == '.' || c >= '0' && c <= '9' }
