package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// RequestKind is who asked the API server for what.
type RequestKind struct {
	// Component is the client's user agent up to its first "/", with
	// " leader-election" when controller-runtime's leader election sent
	// it (it appends that to the user agent).
	Component string
	Verb      string
	// Resource is the resource, with "/subresource" when there is one.
	Resource string
}

func (k RequestKind) String() string { return k.Component + " " + k.Verb + " " + k.Resource }

// Audit reads an API server's audit log as it grows and counts requests
// by kind within time windows.
type Audit struct {
	path   string
	offset int64
	kinds  []RequestKind
	index  map[RequestKind]int
	events []auditEvent
}

type auditEvent struct {
	at   time.Time
	kind int
}

// NewAudit follows the audit log at path.
func NewAudit(path string) *Audit {
	return &Audit{path: path, index: map[RequestKind]int{}}
}

type auditLine struct {
	Verb      string    `json:"verb"`
	UserAgent string    `json:"userAgent"`
	Received  time.Time `json:"requestReceivedTimestamp"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
}

// Read takes in what the log gained since the last Read.
func (a *Audit) Read() error {
	f, err := os.Open(a.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(a.offset, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			// A partial last line is read again next time.
			return nil
		}
		a.offset += int64(len(line))
		var l auditLine
		if err := json.Unmarshal(line, &l); err != nil {
			return fmt.Errorf("audit log %s: %w", a.path, err)
		}
		k := RequestKind{Component: component(l.UserAgent), Verb: l.Verb}
		if l.ObjectRef != nil {
			k.Resource = l.ObjectRef.Resource
			if l.ObjectRef.Subresource != "" {
				k.Resource += "/" + l.ObjectRef.Subresource
			}
		}
		i, ok := a.index[k]
		if !ok {
			i = len(a.kinds)
			a.kinds = append(a.kinds, k)
			a.index[k] = i
		}
		a.events = append(a.events, auditEvent{at: l.Received, kind: i})
	}
}

func component(userAgent string) string {
	name, _, _ := strings.Cut(userAgent, "/")
	name, _, _ = strings.Cut(name, " ")
	if strings.HasSuffix(userAgent, "/leader-election") {
		name += " leader-election"
	}
	if name == "" {
		name = "(none)"
	}
	return name
}

// Count returns the requests received in [from, to), by kind.
func (a *Audit) Count(from, to time.Time) map[RequestKind]int {
	out := map[RequestKind]int{}
	for _, e := range a.events {
		if !e.at.Before(from) && e.at.Before(to) {
			out[a.kinds[e.kind]]++
		}
	}
	return out
}

// Kinds lists the kinds in counts, sorted.
func Kinds(counts ...map[RequestKind]int) []RequestKind {
	seen := map[RequestKind]bool{}
	for _, c := range counts {
		for k := range c {
			seen[k] = true
		}
	}
	out := make([]RequestKind, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b RequestKind) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Sum adds the counts whose kind matches keep (nil: all).
func Sum(counts map[RequestKind]int, keep func(RequestKind) bool) int {
	n := 0
	for k, v := range counts {
		if keep == nil || keep(k) {
			n += v
		}
	}
	return n
}

// IsWrite reports whether verb changes state.
func IsWrite(verb string) bool {
	switch verb {
	case "create", "update", "patch", "delete", "deletecollection", "apply":
		return true
	}
	return false
}
